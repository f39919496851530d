"""The key every simulator of the tests accepts."""

API_KEY = "test-api-key-0123456789"
# A recognisable secret: tests grep logs and /metrics bodies for it.
SECRET = "SECRETxSECRETxSECRETxSECRETxSECRETxSECRETxSECRETxSECRETx0123"
