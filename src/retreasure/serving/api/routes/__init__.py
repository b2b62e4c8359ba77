"""One router per business area; each declares the area whose roles it admits."""
