"""`make run`: migrate, seed the demo if empty, and serve the portal with a worker.

With no REDIS_URL set it starts a private redis-server on loopback and stops it on exit;
it also starts the Pipedrive sandbox, a worker and `flask cron`. Everything started here
is stopped when this process ends (Ctrl-C).
"""

import os
import signal
import subprocess
import sys

from portal.localredis import LocalRedis


def flask(*args):
    """The flask CLI of this virtualenv, for this app."""
    return [sys.executable, "-m", "flask", "--app", "app", *args]


def main():
    """Run everything until interrupted."""
    env = dict(os.environ)
    redis = None
    if not env.get("REDIS_URL"):
        redis = LocalRedis().start()
        env["REDIS_URL"] = redis.url
        print(f"Started a private Redis at {redis.url}", flush=True)
    port = env.get("PORT", "5000")
    env.setdefault("PIPEDRIVE_SANDBOX_PORT", "5055")
    children = []
    try:
        # The demo's Pipedrive data sources read from this local Pipedrive-compatible sandbox.
        children.append(subprocess.Popen([sys.executable, "-m", "sandbox.pipedrive",
                                          "--port", env["PIPEDRIVE_SANDBOX_PORT"]], env=env))
        subprocess.run(flask("db", "upgrade"), env=env, check=True)
        subprocess.run(flask("seed-demo", "--if-empty"), env=env, check=True)
        env.setdefault("PORTAL_PUBLIC_URL", f"http://127.0.0.1:{port}")
        subprocess.run(flask("register-webhooks"), env=env, check=False)
        children.append(subprocess.Popen(flask("worker"), env=env))
        children.append(subprocess.Popen(flask("cron"), env=env))
        children.append(subprocess.Popen(flask("run", "--host", "127.0.0.1", "--port", port), env=env))
        print(f"The portal is at http://127.0.0.1:{port}  (Ctrl-C stops it)", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while all(child.poll() is None for child in children):
            try:
                children[0].wait(1)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        if redis:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
