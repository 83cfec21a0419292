"""Datasets sent by browsers straight to the external store: upload sessions, their JSON
views, the background check of what arrived, and the form field and widget.

The bytes never pass through Django: the server signs short-lived ``PUT`` URLs for the
parts, reads back what the store holds, and completes the upload itself.
"""
