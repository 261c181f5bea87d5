"""The video translation job simulator: the server's parts and the client library (simulator.client)."""
