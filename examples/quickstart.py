"""Run agent-style code in fresh hardened containers: data in, analysis, files out, limits held."""

from sandbox import Orchestrator

ANALYSIS = """
import csv, json
totals = {}
with open('data/sales.csv') as f:
    for row in csv.DictReader(f):
        totals[row['region']] = totals.get(row['region'], 0) + int(row['amount'])
json.dump(totals, open('report.json', 'w'))
print('regions:', ', '.join(sorted(totals)))
"""

with Orchestrator() as orc, orc.session(owner="demo") as s:
    s.upload("data/sales.csv", b"region,amount\nnorth,120\nsouth,80\nnorth,45\n")
    r = s.run(ANALYSIS)
    print(f"run 1 exit={r.exit_code} in {r.duration_s * 1000:.1f} ms: {r.stdout.strip()}")
    print("report.json from the host side:", s.download("report.json").decode())

    r = s.run("import os; print(os.getuid(), os.listdir('.'))")
    print(f"run 2 (a new container, same workspace): {r.stdout.strip()}")

    r = s.run("while True: pass", timeout=1)
    print(f"run 3 spins forever: timed_out={r.timed_out} exit={r.exit_code}")

    r = s.run("import socket; socket.create_connection(('1.1.1.1', 443), timeout=2)")
    print("run 4 tries the network:", r.stderr.strip().splitlines()[-1])
