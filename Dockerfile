# boundary's images. `base`: the CLI, the grading and sandbox workers, migrations.
# `gpu`: a sampling worker on NVIDIA GPUs, on top of vLLM's own image.
# Built by docker-compose.yml; by hand: docker build --target base -t boundary .

FROM python:3.11-slim AS base
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY migrations migrations
RUN pip install --no-cache-dir ".[docker]" \
    && useradd --create-home --uid 1000 boundary
USER boundary
ENTRYPOINT ["boundary"]
CMD ["--help"]

FROM vllm/vllm-openai:v0.11.0 AS gpu
WORKDIR /app
COPY pyproject.toml README.md ./
COPY api api
COPY workers workers
COPY migrations migrations
RUN pip install --no-cache-dir .
ENTRYPOINT ["boundary"]
CMD ["worker", "sample", "--help"]
