# runnet operator image: runtime dependencies only (the emulators are an extra it does not need).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --no-create-home runnet
USER 10001
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["runnet", "run"]
CMD ["--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz"]
