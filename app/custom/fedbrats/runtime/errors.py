"""Errors raised for bad input data."""


class BratsDataError(ValueError):
    """Bad BraTS input: names the case and the file so that the site can fix it."""

    def __init__(self, message: str, case: str = "", path: str = ""):
        where = ", ".join(p for p in (f"case {case}" if case else "", f"file {path}" if path else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.case = case
        self.path = path
