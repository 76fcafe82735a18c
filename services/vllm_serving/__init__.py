"""Serving on vLLM: a reconciler that keeps vLLM replicas serving every task's routed
versions, and a capturing gateway (``flywheel serve --backend vllm``) in front of them."""
