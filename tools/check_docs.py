"""Open every page of the built site (_docs/) in headless Chromium, with the network off, and check what a reader sees.

    python tools/check_docs.py [--screenshot FILE.png]

For each page: no console error or uncaught exception; math rendered by MathJax (mjx-container elements, and no
`$...$` source left in the text); every image loaded (naturalWidth > 0); every link inside the site points to a file
that exists (and to an anchor there, if it names one); no nbdev directive (`#|`) in any code block, and no hidden set-up cell's code;
no output wider than its box (a reader would scroll sideways to read a message); no class shown as `def`. It also reports
how many code boxes still scroll sideways.
It drives Chromium through the DevTools protocol (websocket-client). Exit status 1, with one line per problem.
"""
import json, os, re, shutil, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path
import websocket

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT/'_docs'

class Browser:
    "Headless Chromium, no network, driven over the DevTools protocol."
    def __init__(self):
        exe = next((shutil.which(n) for n in ('chromium', 'chromium-browser', 'google-chrome') if shutil.which(n)), None)
        if exe is None: sys.exit("tools/check_docs.py needs Chromium: apt-get install chromium")
        self.profile = tempfile.mkdtemp()
        self.proc = subprocess.Popen([exe, '--headless=new', '--no-sandbox', '--disable-gpu', '--remote-debugging-port=0',
            f'--user-data-dir={self.profile}', '--proxy-server=127.0.0.1:9', '--host-resolver-rules=MAP * ~NOTFOUND',
            '--window-size=1280,1600', '--allow-file-access-from-files', 'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile)/'DevToolsActivePort'
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip(): break
            time.sleep(0.1)
        else: sys.exit("Chromium did not start within 20 s")
        port = int(port_file.read_text().split()[0])
        targets = json.load(urllib.request.urlopen(f'http://127.0.0.1:{port}/json', timeout=10))
        self.ws = websocket.create_connection(next(t for t in targets if t['type'] == 'page')['webSocketDebuggerUrl'], timeout=30, suppress_origin=True)
        self.n, self.events = 0, []
        for m in ('Page.enable', 'Runtime.enable', 'Log.enable'): self.call(m)

    def call(self, method, **params):
        "Send a DevTools command and return its result; events that arrive meanwhile are kept in `events`."
        self.n += 1
        self.ws.send(json.dumps({'id': self.n, 'method': method, 'params': params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get('id') == self.n:
                if 'error' in msg: raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get('result', {})
            self.events.append(msg)

    def open(self, url):
        "Load `url` and wait for its load event and for MathJax to finish typesetting; returns the console problems."
        self.events = []
        self.call('Page.navigate', url=url)
        deadline = time.time() + 30
        while not any(e.get('method') == 'Page.loadEventFired' for e in self.events):
            if time.time() > deadline: return ['the page did not finish loading in 30 s']
            self.events.append(json.loads(self.ws.recv()))
        self.eval("window.MathJax && MathJax.startup && MathJax.startup.promise ? MathJax.startup.promise.then(() => true) : true")
        problems = []
        for e in self.events:
            p = e.get('params', {})
            if e.get('method') == 'Runtime.exceptionThrown': problems.append(f"uncaught exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception', {}).get('description', '')[:200]}")
            elif e.get('method') == 'Runtime.consoleAPICalled' and p.get('type') == 'error': problems.append(f"console error: {' '.join(str(a.get('value', a.get('description', ''))) for a in p.get('args', []))[:300]}")
            elif e.get('method') == 'Log.entryAdded' and p['entry'].get('level') == 'error': problems.append(f"console error: {p['entry'].get('text', '')[:300]} {p['entry'].get('url', '')}")
        return problems

    def eval(self, js):
        "The value of JavaScript expression `js` in the page (promises awaited)."
        r = self.call('Runtime.evaluate', expression=js, awaitPromise=True, returnByValue=True)
        if 'exceptionDetails' in r: raise RuntimeError(f"{js[:60]}: {r['exceptionDetails']}")
        return r['result'].get('value')

    def screenshot(self, fn):
        import base64
        Path(fn).write_bytes(base64.b64decode(self.call('Page.captureScreenshot', format='png')['data']))

    def close(self):
        self.ws.close(); self.proc.terminate(); self.proc.wait(10); shutil.rmtree(self.profile, ignore_errors=True)

INSPECT = '''(() => {
  const main = document.querySelector('main') || document.body;
  const text = main.innerText;
  return {
    math: document.querySelectorAll('mjx-container').length,
    mathSource: document.querySelectorAll('.math').length,
    rawDollar: (text.match(/\\$\\$|\\\\\\(|(^|[^`\\w])\\$[^\\s$][^$\\n]*\\$/gm) || []).slice(0, 3),
    images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    directives: ([...document.querySelectorAll('pre')].map(p => p.innerText).join('\\n').match(/#\\|[^\\n]{0,40}/g) || []).slice(0, 3),
    wideOutputs: [...document.querySelectorAll('div.cell_output pre')].filter(p => p.scrollWidth > p.clientWidth + 1)
                 .map(p => p.innerText.split('\\n')[0].slice(0, 60)),
    classesAsDef: [...document.querySelectorAll('div.cell_output pre')].map(p => p.innerText.trim())
                  .filter(t => /^def [A-Z]/.test(t)).map(t => t.split('(')[0]),
    wideCode: [...document.querySelectorAll('div.cell_input pre')].filter(p => p.scrollWidth > p.clientWidth + 1).length,
    codeBoxes: document.querySelectorAll('div.cell_input pre').length,
    text: text,
  };
})()'''

HIDDEN_MARKERS = ['torch.set_num_threads(1)', 'from fastcore.test import', 'def stderr_fd_to']   # code of #|hide set-up cells

def check_page(b, page):
    "Problems a reader would meet on `page` (a path in the site)."
    problems = b.open(page.as_uri())
    info = b.eval(INSPECT)
    if info['mathSource'] and info['math'] < info['mathSource']:
        problems.append(f"{info['math']} rendered formulas for {info['mathSource']} in the source: MathJax did not render them all")
    problems += [f"math left as source: {m!r}" for m in info['rawDollar']]
    problems += [f"image did not load: {src}" for src, ok in info['images'] if not ok]
    for href in info['links']:
        if re.match(r'^[a-z]+:', href) and not href.startswith('file:'): continue   # http(s), mailto: outside the site
        target, _, anchor = href.partition('#')
        f = (page.parent/target).resolve() if target else page
        if not f.exists(): problems.append(f"link to a missing file: {href}")
        elif anchor and f.suffix == '.html' and f'id="{anchor}"' not in f.read_text(errors='replace'): problems.append(f"link to a missing anchor: {href}")
    problems += [f"directive text shown: {d!r}" for d in info['directives']]
    problems += [f"an output wider than its box (a reader must scroll sideways): {t!r}" for t in info['wideOutputs']]
    problems += [f"a class shown as a function: {t!r}" for t in info['classesAsDef']]
    problems += [f"hidden cell's code shown: {m!r}" for m in HIDDEN_MARKERS if m in info['text']]
    return problems, info['math'], (info['wideCode'], info['codeBoxes'])

def main(argv):
    pages = sorted(SITE.glob('*.html'))
    if not pages: sys.exit(f"no site in {SITE}: run python tools/docs.py first")
    b = Browser()
    try:
        report, total_math, wide = [], 0, {}
        for page in pages:
            problems, math, wide[page.name] = check_page(b, page)
            total_math += math
            report += [f"{page.name}: {p}" for p in problems]
        if '--screenshot' in argv:
            fn = argv[argv.index('--screenshot') + 1]
            b.open((SITE/'03_learner.html').as_uri()); b.screenshot(fn)
            print(f"screenshot of 03_learner.html in {fn}")
    finally: b.close()
    scrolling = {p: w for p, w in wide.items() if w[0]}
    print(f"code boxes that still scroll sideways: {sum(w for w, _ in scrolling.values())} of {sum(n for _, n in wide.values())}"
          + (' (' + ', '.join(f'{p} {w}/{n}' for p, (w, n) in scrolling.items()) + ')' if scrolling else ''))
    for r in report: print(r, file=sys.stderr)
    if report: sys.exit(f"{len(report)} problem(s) in the site")
    print(f"{len(pages)} pages checked in a headless browser with the network off: no console error, {total_math} formulas rendered, "
          f"every image loaded, every link inside the site resolves, no directive or hidden code shown")

if __name__ == '__main__': main(sys.argv[1:])
