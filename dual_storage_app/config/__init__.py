"""Configuration, below the engine: where settings come from (:mod:`.sources`), what is
wrong with them (:mod:`.validation`), each provider's quirks (:mod:`.providers`), and the
built configuration the engine reads (:mod:`.stores`, made by :mod:`.loading`)."""
