/// The Python helper `RayLauncher` runs (`python3 -c` of this text, so the binary needs no
/// file beside it): Ray has no Swift API, so this small program talks to Ray for `ebb serve`.
/// It reads one JSON command per line on stdin and answers with lines `EBB-RAY {json}` on
/// stdout (other output — Ray's forwarded worker logs — goes to stderr, into the server log).
///
/// Commands: `launch` {id, argv, env, cpus, gpus, timeout} reserves a placement group of one
/// bundle for the rank and starts an `EngineCore` actor in it, which runs the `ebb
/// engine-core` process (its parent: the actor, so the engine core exits when its actor
/// dies); `stop` {id, grace}; `fence` {id}; `stop_all` {grace}. Events: `ready` (connected,
/// with the alive nodes), `launched`/`launch_failed`, `stopped`, `exited` {id, description}
/// when an engine core ends unasked (its process exited, or its actor or node died).
enum RayHelperScript {
    static let source = #"""
import json, os, queue, signal, subprocess, sys, threading, time

def emit(obj):
    sys.stdout.write("EBB-RAY " + json.dumps(obj) + "\n")
    sys.stdout.flush()

try:
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
except Exception as e:  # noqa: BLE001 - reported to ebb serve
    emit({"event": "error", "error": "Ray is not installed for " + sys.executable + " (pip install 'ray[default]'): " + str(e)})
    os._exit(2)

PARENT = os.getppid()


def watch_parent():
    """Ends the helper when `ebb serve` goes away (Ray then ends its actors, and their
    engine cores follow)."""
    while os.getppid() == PARENT:
        time.sleep(0.5)
    os._exit(1)


threading.Thread(target=watch_parent, daemon=True).start()


@ray.remote(max_restarts=0, max_concurrency=4)
class EngineCore:
    """Owns one `ebb engine-core` process on the node Ray placed it on."""

    def __init__(self, argv, env):
        full = dict(os.environ)
        full.update(env)
        full["EBB_PARENT_PID"] = str(os.getpid())
        # Gloo listens on this node's address, which peers on other nodes can reach.
        full.setdefault("EBB_GLOO_HOSTNAME", ray.util.get_node_ip_address())
        self.proc = subprocess.Popen(argv, env=full, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr)

    def info(self):
        ctx = ray.get_runtime_context()
        return {"pid": self.proc.pid, "node_id": ctx.get_node_id(), "node_ip": ray.util.get_node_ip_address(),
                "actor_id": ctx.get_actor_id()}

    def wait(self):
        return self.proc.wait()

    def stop(self, grace):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait()


class Helper:
    def __init__(self):
        self.cores = {}  # id -> {"actor", "pg", "wait", "node_ip"}

    def launch(self, cmd):
        rid, cpus, gpus = cmd["id"], max(1, int(cmd.get("cpus", 1))), int(cmd.get("gpus", 0))
        bundle = {"CPU": cpus}
        if gpus:
            bundle["GPU"] = gpus
        pg = placement_group([bundle], strategy="STRICT_PACK", name="ebb-" + rid + "-" + str(os.getpid()))
        ready, _ = ray.wait([pg.ready()], timeout=float(cmd.get("timeout", 30)))
        if not ready:
            remove_placement_group(pg)
            free, total = ray.available_resources(), ray.cluster_resources()
            room = {k: "%g of %g" % (free.get(k, 0), total[k]) for k in ("CPU", "GPU") if k in total}
            return {"event": "launch_failed", "id": rid, "error": "a placement group of %s for %s cannot be satisfied "
                    "within %gs (free in the cluster: %s)" % (json.dumps(bundle), rid, float(cmd.get("timeout", 30)),
                                                              json.dumps(room))}
        try:
            actor = EngineCore.options(num_cpus=cpus, num_gpus=gpus, scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_bundle_index=0)).remote(cmd["argv"], cmd.get("env", {}))
            info = ray.get(actor.info.remote(), timeout=120)
        except Exception as e:  # noqa: BLE001 - reported to ebb serve
            remove_placement_group(pg)
            return {"event": "launch_failed", "id": rid, "error": "the Ray actor for %s did not start: %s" % (rid, e)}
        self.cores[rid] = {"actor": actor, "pg": pg, "wait": actor.wait.remote(), "node_ip": info["node_ip"]}
        return dict({"event": "launched", "id": rid}, **info)

    def release(self, rid):
        core = self.cores.pop(rid, None)
        if core is None:
            return None
        try:
            ray.kill(core["actor"], no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        try:
            remove_placement_group(core["pg"])
        except Exception:  # noqa: BLE001 - already gone
            pass
        return core

    def stop(self, rid, grace):
        core = self.cores.get(rid)
        if core is not None:
            try:
                ray.get(core["actor"].stop.remote(grace), timeout=grace + 30)
            except Exception:  # noqa: BLE001 - the actor is gone already
                pass
            self.release(rid)
        return {"event": "stopped", "id": rid}

    def fence(self, rid):
        core = self.cores.get(rid)
        if core is not None:
            try:
                ray.get(core["actor"].kill.remote(), timeout=10)
            except Exception:  # noqa: BLE001 - the actor is gone already
                pass
            self.release(rid)
        return {"event": "stopped", "id": rid}

    def watch(self):
        if not self.cores:
            return
        refs = {core["wait"]: rid for rid, core in self.cores.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            rid = refs[ref]
            ip = self.cores[rid]["node_ip"]
            try:
                description = "exited with status %s on Ray node %s" % (ray.get(ref), ip)
            except Exception as e:  # noqa: BLE001 - actor or node death
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                description = "its Ray actor on node %s died (%s)" % (ip, first[:300])
            self.release(rid)
            emit({"event": "exited", "id": rid, "description": description})


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else "auto"
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and "://" not in address:
        # Ray retries an unreachable GCS for minutes; a refused connection is a clear answer now.
        import socket
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as e:
            emit({"event": "error", "error": "cannot connect to the Ray cluster at '%s': %s" % (address, e)})
            os._exit(2)
    try:
        ray.init(address=address, log_to_driver=True, logging_level="ERROR", configure_logging=False)
    except Exception as e:  # noqa: BLE001 - reported to ebb serve
        emit({"event": "error", "error": "cannot connect to the Ray cluster at '%s': %s" % (address, str(e).splitlines()[0] if str(e) else e)})
        os._exit(2)  # Ray's threads may keep a normal exit waiting
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")]
    emit({"event": "ready", "nodes": nodes, "driver_ip": ray.util.get_node_ip_address(), "resources": {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}})
    commands = queue.Queue()

    def read():
        for line in sys.stdin:
            line = line.strip()
            if line:
                try:
                    commands.put(json.loads(line))
                except ValueError:
                    emit({"event": "error", "error": "not a JSON command: " + line[:200]})
        commands.put(None)

    threading.Thread(target=read, daemon=True).start()
    helper = Helper()
    while True:
        try:
            cmd = commands.get(timeout=0.1)
        except queue.Empty:
            cmd = False
        if cmd is None:
            for rid in list(helper.cores):
                helper.stop(rid, 5)
            return 0
        if cmd:
            op = cmd.get("op")
            if op == "launch":
                emit(helper.launch(cmd))
            elif op == "stop":
                emit(helper.stop(cmd["id"], float(cmd.get("grace", 3))))
            elif op == "fence":
                emit(helper.fence(cmd["id"]))
            elif op == "stop_all":
                for rid in list(helper.cores):
                    helper.stop(rid, float(cmd.get("grace", 5)))
                emit({"event": "stopped", "id": "*"})
            else:
                emit({"event": "error", "error": "unknown command %r" % op})
        helper.watch()


code = main()
sys.stdout.flush()
os._exit(code)
"""#
}
