"""A typed HTTP client of the mesops service, for MES integrations, the demo and the benchmarks."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx


class ServiceError(RuntimeError):
    """A non-2xx answer: status, error code and detail as the service sent them."""

    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        error = body.get("error") if isinstance(body, dict) else "error"
        super().__init__(f"HTTP {status} {error}: {detail}")
        self.status, self.error, self.detail = status, error, detail


class MesopsClient:
    """Calls the service with one API key (keep-alive connection; use as a context manager)."""

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout_s)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self._http.post(path, json=body)
        if response.status_code >= 300:
            try:
                payload: Any = response.json()
            except ValueError:
                payload = response.text
            raise ServiceError(response.status_code, payload)
        return response.json()

    def failure_risk(self, machine_id: str, **extra: Any) -> dict[str, Any]:
        """Failure risk of a machine within the next shift."""
        return self._post("/v1/failure/risk", {"machine_id": machine_id, **extra})

    def yield_forecast(self, order_id: str, **extra: Any) -> dict[str, Any]:
        """Expected yield of a released order."""
        return self._post("/v1/yield/forecast", {"order_id": order_id, **extra})

    def consumption_forecast(self, meter_id: str, day: str | None = None, **extra: Any) -> dict[str, Any]:
        """Energy forecast of a meter for a day."""
        return self._post("/v1/consumption/forecast", {"meter_id": meter_id, "day": day, **extra})

    def feedback(
        self, recommendation_id: str, decision: str, reason_code: str, modified_value: float | None = None
    ) -> dict[str, Any]:
        """A planner's decision on a recommendation."""
        body = {"recommendation_id": recommendation_id, "decision": decision, "reason_code": reason_code}
        if modified_value is not None:
            body["modified_value"] = modified_value
        return self._post("/v1/feedback", body)

    def outcome(
        self, model: str, correlation_id: str, entity_id: str, actual: float, observed_at: str
    ) -> dict[str, Any]:
        """What really happened, for the prediction with this correlation id."""
        return self._post(
            "/v1/outcomes",
            {
                "model": model,
                "correlation_id": correlation_id,
                "entity_id": entity_id,
                "actual": actual,
                "observed_at": observed_at,
            },
        )

    def recommendations(self, model: str | None = None, status: str | None = None, limit: int = 100) -> Any:
        """Recent recommendations, newest first."""
        return self._post("/v1/recommendations", {"model": model, "status": status, "limit": limit})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MesopsClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
