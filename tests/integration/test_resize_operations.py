"""The resize API for orchestrators (issue 14): `"wait": false` answers 202 with an
operation id that `GET /elastic_ep/operations/{id}` follows to `committed`; a repeated
absolute target or operation id does not resize twice; `GET /elastic_ep/plan` names the
ranks a scale-down retires before it runs; bad input is 400 or 404 and changes nothing."""

from __future__ import annotations

import time

from conftest import running_server
from test_elastic import ELASTIC, scale, status


def operation(server, op_id: str):
    return server.request("GET", f"/elastic_ep/operations/{op_id}", timeout=10)


def test_asynchronous_resize_operations_and_plans(start_server):
    with running_server(start_server, "builtin:tiny-moe", "--data-parallel-size", "2", *ELASTIC,
                        "--num-redundant-experts", "16") as server:
        r = server.request("GET", "/elastic_ep/plan?new_data_parallel_size=1")
        assert r.status == 200 and r.json()["retiring_ranks"] == [1] and r.json()["retiring_engines"] == ["engine-1"], r.text
        r = server.request("GET", "/elastic_ep/plan?remove_ranks=0")
        assert r.status == 200 and r.json()["retiring_engines"] == ["engine-0"], r.text
        assert server.request("GET", "/elastic_ep/plan?new_data_parallel_size=x").status == 400
        assert server.request("GET", "/elastic_ep/plan").status == 400
        assert status(server)["generation"] == 1, "a plan changes nothing"

        r = scale(server, {"new_data_parallel_size": 3, "wait": False, "operation_id": "grow-to-3"})
        assert r.status == 202, r.text
        op = r.json()
        assert op["operation_id"] == "grow-to-3" and op["state"] in ("preparing", "committing", "committed"), op
        # Repeating it while it runs (by id, or by the same absolute target) starts nothing new.
        again = scale(server, {"new_data_parallel_size": 3, "wait": False})
        assert again.status == 202 and again.json()["operation_id"] == "grow-to-3", again.text
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            op = operation(server, "grow-to-3").json()
            if op["state"] in ("committed", "rolled_back", "failed"):
                break
            time.sleep(0.1)
        assert op["state"] == "committed", op
        assert op["generation"] == 2 and "prepare+commit" in op["phases"], op
        assert status(server)["generation"] == 2

        # Done: the same target is a no-op, the same id answers the finished operation.
        noop = scale(server, {"new_data_parallel_size": 3, "wait": False})
        assert noop.status == 202 and noop.json()["state"] == "committed" and noop.json()["generation"] == 2, noop.text
        same = scale(server, {"new_data_parallel_size": 1, "operation_id": "grow-to-3", "wait": False})
        assert same.status == 202 and same.json()["operation_id"] == "grow-to-3", same.text
        assert status(server)["generation"] == 2

        # The synchronous form with an id waits and answers like vLLM's.
        r = scale(server, {"remove_ranks": [1], "operation_id": "drop-1"})
        assert r.status == 200, r.text
        assert operation(server, "drop-1").json()["state"] == "committed"

        assert operation(server, "no-such-operation").status == 404
        for bad in ({"new_data_parallel_size": 2, "wait": "no"}, {"new_data_parallel_size": 2, "operation_id": "bad id!"},
                    {"new_data_parallel_size": 2, "operation_id": ""}):
            assert scale(server, bad).status == 400, bad
        assert status(server)["generation"] == 3
        server.assert_alive()
