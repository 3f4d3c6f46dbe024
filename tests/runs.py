"""The evaluate flow called with a run request's fields as keywords, as the tests write them
(the flow itself takes the typed ``RunRequest`` whole, which is what a deployment carries)."""

from flows.evaluate import evaluate as evaluate_flow
from glocal.run.request import RunRequest


def evaluate(db: str = "glocal.duckdb", **fields) -> dict:
    return evaluate_flow(request=RunRequest.of(**fields), db=db)
