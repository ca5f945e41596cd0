"""Clients send numbers; the total lives in Redis, so every gateway agrees on it."""
