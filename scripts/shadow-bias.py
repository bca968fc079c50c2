#!/usr/bin/env python3
"""shadow-bias.py FERRY [N] [SEED] — how far shadow labels (docs/gateway.md "Shadow
sampling") are from the truth, on emulated nodes: `ferry emulate` edge-3090
(Qwen2-VL-2B) and cloud-a100 (Qwen2.5-VL-7B) from data/profiles at time scale 0,
`ferry serve` with the edge-only policy and [shadow] rate = 1. N questions (yes/no,
free text, letter; difficulty uniform in [0.05, 0.95], skill vqa) are sent; the client
knows the truth from metadata.answer. Prints the edge node's accuracy, the agreement
rate of the shadow labels and MGQP's predicted quality for the edge node afterwards
(prior 0.62). Everything runs on 127.0.0.1 in a temporary folder and is stopped at the
end."""
import json, os, random, subprocess, sys, tempfile, time, urllib.request

ferry = os.path.abspath(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
profiles = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data', 'profiles')
tmp = tempfile.mkdtemp(prefix='ferry-shadow-bias-')
procs = []


def start(args, name):
    pf = os.path.join(tmp, name)
    procs.append(subprocess.Popen([ferry] + args + ['--port-file', pf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    for _ in range(400):
        if os.path.exists(pf) and open(pf).read().strip():
            return int(open(pf).read())
        time.sleep(0.05)
    raise SystemExit(f'{args[1]} {args[2]}: no port after 20 s')


try:
    ep = start(['emulate', '--profile', 'edge-3090', '--profiles', profiles, '--time-scale', '0'], 'e.port')
    cp = start(['emulate', '--profile', 'cloud-a100', '--profiles', profiles, '--time-scale', '0'], 'c.port')
    ini = os.path.join(tmp, 'gw.ini')
    with open(ini, 'w') as f:
        f.write(f"""[server]\nlisten = 127.0.0.1:0\n[policy]\nname = edge-only\n
[node edge]\nrole = edge\nurl = http://127.0.0.1:{ep}\nprofile = {profiles}\nprofile_node = edge-3090\n
[node cloud]\nrole = cloud\nurl = http://127.0.0.1:{cp}\nprofile = {profiles}\nprofile_node = cloud-a100\n
[shadow]\nrate = 1\nmax_inflight = 64\n""")
    g = subprocess.Popen([ferry, 'serve', '-c', ini], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    procs.append(g)
    gp = int(g.stdout.readline().split('http://127.0.0.1:')[1].split()[0].rstrip('/'))

    def post(body):
        r = urllib.request.urlopen(urllib.request.Request(
            f'http://127.0.0.1:{gp}/v1/chat/completions', json.dumps(body).encode(),
            {'Content-Type': 'application/json'}), timeout=60)
        return r.headers, json.load(r)

    def get(path):
        return urllib.request.urlopen(f'http://127.0.0.1:{gp}{path}', timeout=60).read().decode()

    rng = random.Random(seed)
    right = 0
    for i in range(n):
        ans = rng.choice(['yes', 'blue', 'B'])
        d = rng.uniform(0.05, 0.95)
        _, j = post({'model': 'ferry',
                     'messages': [{'role': 'user', 'content': f'Question {seed}-{i}: about the picture?'}],
                     'metadata': {'answer': ans, 'difficulty': d, 'skill': 'vqa'}})
        right += j['choices'][0]['message']['content'] == ans
    outcomes = ['agree', 'disagree', 'failed', 'unscored']
    for _ in range(600):          # the last reference answers arrive after the clients'
        m = get('/metrics')
        cnt = {o: sum(float(l.split()[-1]) for l in m.splitlines()
                      if l.startswith('ferry_shadow_total') and f'outcome="{o}"' in l) for o in outcomes}
        if sum(cnt.values()) >= n:
            break
        time.sleep(0.1)
    h, _ = post({'model': 'edge', 'messages': [{'role': 'user', 'content': 'Question: about the picture?'}]})
    labelled = cnt['agree'] + cnt['disagree']
    print(f'n={n} seed={seed} edge_accuracy={right / n:.3f} '
          f'shadow_agreement={cnt["agree"] / max(1, labelled):.3f} labels={labelled:.0f} '
          f'failed={cnt["failed"]:.0f} unscored={cnt["unscored"]:.0f} '
          f'mgqp_edge_quality_after={float(h["X-Ferry-Predicted-Quality"]):.3f} (prior 0.620)')
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    for f in os.listdir(tmp):
        os.remove(os.path.join(tmp, f))
    os.rmdir(tmp)
