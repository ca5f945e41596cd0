# One image for every part: the command picks gateway or worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pushgate ./pushgate
COPY gateway ./gateway
COPY worker ./worker
RUN pip install . && useradd --system --uid 10001 pushgate
# Numeric, so Kubernetes can verify runAsNonRoot.
USER 10001

EXPOSE 8000
# Deflate off: it costs ~40 kB per idle connection (see README).
# Pings every 20 s stay below common proxy idle timeouts and find dead peers.
CMD ["uvicorn", "gateway.app:app", "--host", "0.0.0.0", "--port", "8000", \
     "--ws-per-message-deflate", "false", "--ws-ping-interval", "20", "--ws-ping-timeout", "20", \
     "--no-access-log"]
