# Viewfinder's one image: the API (`viewfinder serve`, the default command), background workers
# (`viewfinder worker`) and one-shot steps (`viewfinder db upgrade`) all run from it; compose.yaml
# and docs/deployment.md say how.
#
#   docker build -t viewfinder:cpu .                               # CPU (the default)
#   docker build --build-arg VARIANT=cuda -t viewfinder:cuda .     # NVIDIA GPUs
#
# VARIANT=cpu installs the CPU build of torch that constraints.txt pins, from PyTorch's CPU index.
# VARIANT=cuda drops the "+cpu" from that pin and installs the same torch version's CUDA build:
# PyPI's Linux wheels by default, or the index given as TORCH_INDEX (for example
# https://download.pytorch.org/whl/cu128). The CUDA libraries come inside those wheels, so both
# variants share this slim base; the host needs only the NVIDIA driver and container toolkit.
# torchvision is never installed (constraints.txt says why); the build fails if anything pulls it,
# and if anything pulls opencv-python (the OCR models come from rapidocr, which needs the headless one).

FROM python:3.11-slim AS build

ARG VARIANT=cpu
ARG TORCH_INDEX=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN case "$VARIANT" in \
      cpu) index="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" ;; \
      cuda) index="${TORCH_INDEX:-https://pypi.org/simple}" \
            && sed -i 's/^torch==\([^+]*\)+cpu$/torch==\1/' constraints.txt ;; \
      *) echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2 && exit 1 ;; \
    esac \
    && pip install --no-cache-dir --extra-index-url "$index" -c constraints.txt \
        ".[postgres,s3,qdrant,int8]" \
    && if pip show torchvision >/dev/null 2>&1; then \
        echo "torchvision was installed: it breaks transformers; see constraints.txt" >&2 && exit 1; \
    fi \
    && if pip show opencv-python >/dev/null 2>&1; then \
        echo "opencv-python was installed: it clashes with opencv-python-headless" >&2 && exit 1; \
    fi

FROM python:3.11-slim

ARG VARIANT=cpu
LABEL org.opencontainers.image.title="Viewfinder" \
      org.opencontainers.image.description="Self-hosted image intelligence service" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.viewfinder.variant="$VARIANT"

# A fixed non-root user; /data (the data directory: classifiers, and the embedded store when no
# database or bucket is configured) and /models (the model cache) are its volumes.
RUN useradd --system --no-log-init --uid 10001 --user-group --create-home \
        --home-dir /home/viewfinder viewfinder \
    && mkdir -p /data /models \
    && chown viewfinder:viewfinder /data /models

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIEWFINDER_HOST=0.0.0.0 \
    VIEWFINDER_PORT=8000 \
    VIEWFINDER_DATA_DIR=/data \
    VIEWFINDER_MODELS_DIR=/models

USER 10001:10001
WORKDIR /home/viewfinder
EXPOSE 8000

# The slim base has no curl: Python asks the API's /health. Workers and one-shot steps run no
# HTTP server, so compose.yaml turns this check off for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('VIEWFINDER_PORT', '8000'), timeout=4)"]

CMD ["viewfinder", "serve"]
