"""Moving data between stores: legacy single-bucket -> dual migrations, external provider
swaps and promotions (:mod:`.rules`, :mod:`.source`, :mod:`.copying`, :mod:`.journal`,
:mod:`.engine`, :mod:`.promotion`)."""
