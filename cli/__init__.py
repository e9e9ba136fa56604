"""The click front end of pmtnumba (installed as ``pmtnumba_cli``; console script ``pmtnumba``)."""
