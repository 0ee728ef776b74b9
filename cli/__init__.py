"""Command-line interface of geo-p2p (installed as the ``geo_p2p_cli`` package)."""
