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
# pushgate gateway: uvicorn with pushgate's lean WebSocket protocol (less memory and CPU per
# connection than uvicorn's), deflate off (it costs ~40 kB per idle connection) and pings every
# 20 s (below common proxy idle timeouts); SIGTERM drains over PUSHGATE_DRAIN_SECONDS (README).
CMD ["pushgate", "gateway", "--host", "0.0.0.0", "--port", "8000"]
