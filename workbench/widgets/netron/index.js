// Front end of workbench.widgets.NetronView: an iframe on the kernel's Netron server.
//
// Route: through the Jupyter server (jupyter-server-proxy, `{baseUrl}proxy/127.0.0.1:<port>/<token>/`),
// which works wherever the notebook works (Binder, JupyterHub, a remote server), or directly
// (`http://127.0.0.1:<port>/<token>/`) where the browser shares the kernel's host. A page served
// from a loopback host tries direct first, then the proxy; a page from another host tries only
// the proxy (its 127.0.0.1 is not the kernel's, and asking would prompt for local-network access);
// a page without a Jupyter server (VS Code) goes direct. Each route is probed with `wb-id`, which
// answers with the server's token, so a stranger on the same port is never shown.

function jupyterBaseUrl() {
    const element = document.getElementById('jupyter-config-data');
    if (!element) {
        return null;
    }
    try {
        const config = JSON.parse(element.textContent || '{}');
        const base = config.baseUrl || '/';
        return base.endsWith('/') ? base : `${base}/`;
    } catch {
        return null;
    }
}

function isLoopback(hostname) {
    return ['localhost', '127.0.0.1', '[::1]', '::1'].includes(hostname);
}

function candidates(model) {
    const port = model.get('port');
    const token = model.get('token');
    const direct = ['direct', `http://127.0.0.1:${port}/${token}/`];
    const base = jupyterBaseUrl();
    const proxy = base === null ? null : ['proxy', `${base}proxy/127.0.0.1:${port}/${token}/`];
    const wanted = model.get('route');
    if (wanted === 'direct') {
        return [direct];
    }
    if (wanted === 'proxy') {
        return proxy ? [proxy] : [];
    }
    if (proxy === null) {
        return [direct];
    }
    return isLoopback(window.location.hostname) ? [direct, proxy] : [proxy];
}

async function probe(url, token, timeout) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeout);
    try {
        const response = await fetch(`${url}wb-id`, { signal: controller.signal, cache: 'no-store', credentials: 'same-origin' });
        if (!response.ok) {
            return false;
        }
        const body = await response.json();
        return body && body.token === token;
    } catch {
        return false;
    } finally {
        clearTimeout(timer);
    }
}

function whenVisible(element, callback) {
    if (typeof IntersectionObserver === 'undefined') {
        callback();
        return () => {};
    }
    const observer = new IntersectionObserver((entries) => {
        if (entries.some((entry) => entry.isIntersecting)) {
            observer.disconnect();
            callback();
        }
    });
    observer.observe(element);
    return () => observer.disconnect();
}

function render({ model, el }) {
    el.classList.add('wb-netron');
    const status = document.createElement('div');
    status.className = 'wb-netron-status';
    status.style.cssText = 'font-size: 12px; color: var(--jp-ui-font-color2, #666); margin: 2px 0 4px 0;';
    const frame = document.createElement('iframe');
    frame.className = 'wb-netron-frame';
    frame.title = 'Netron';
    // allow-same-origin stays: without it the frame's origin is opaque, so through the Jupyter server
    // (the page then lives under Jupyter's origin) the browser sends Jupyter's login cookie with
    // none of Netron's script, style and model requests; Jupyter redirects each to its login page
    // and Netron never draws (checked in Chromium 156 through jupyter-server-proxy 4.6). What
    // isolates the page instead: its CSP (scripts, styles and fetches only from its own
    // /proxy/127.0.0.1:<port>/<token>/ folder, no inline script, no eval), and Netron drawing
    // model strings as text.
    frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-downloads allow-popups allow-modals');
    frame.setAttribute('referrerpolicy', 'no-referrer');
    frame.style.cssText = 'box-sizing: border-box; width: 100%; border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; background: #fff;';
    el.appendChild(status);
    el.appendChild(frame);
    let generation = 0;
    let stopWatching = () => {};

    const setStatus = (text) => {
        status.textContent = text;
    };

    const load = async () => {
        const mine = ++generation;
        frame.style.height = `${model.get('height')}px`;
        if (!model.get('port') || !model.get('token')) {
            frame.removeAttribute('src');
            frame.style.display = 'none';
            setStatus(model.get('message') || 'No model to draw yet.');
            return;
        }
        frame.style.display = '';
        setStatus('Netron: connecting to the kernel\u2019s server\u2026');
        const routes = candidates(model);
        let chosen = null;
        for (const [name, url] of routes) {
            // eslint-disable-next-line no-await-in-loop
            if (await probe(url, model.get('token'), 4000)) {
                chosen = [name, url];
                break;
            }
            if (mine !== generation) {
                return;
            }
        }
        if (mine !== generation) {
            return;
        }
        if (chosen === null) {
            const tried = routes.map(([name]) => name).join(' and ') || 'no route';
            setStatus(`Netron: the kernel's server could not be reached (${tried} tried). ` +
                'Install jupyter-server-proxy in the Jupyter server\u2019s environment, or open the notebook on the kernel\u2019s machine.');
            model.set('route_used', 'unreachable');
            model.save_changes();
            if (routes.length === 0) {
                return;
            }
            chosen = routes[0];
        }
        const [name, url] = chosen;
        const how = name === 'proxy' ? 'through the Jupyter server' : 'directly from the kernel';
        setStatus(`Netron ${model.get('netron_version')} \u00b7 ${model.get('model_name')} \u00b7 served ${how}, offline`);
        frame.dataset.route = name;
        frame.src = `${url}?rev=${model.get('revision')}`;
        if (model.get('route_used') !== name) {
            model.set('route_used', name);
            model.save_changes();
        }
    };

    const schedule = () => {
        stopWatching();
        stopWatching = whenVisible(el, () => {
            load();
        });
    };
    for (const name of ['port', 'token', 'revision', 'route', 'message']) {
        model.on(`change:${name}`, schedule);
    }
    model.on('change:height', () => {
        frame.style.height = `${model.get('height')}px`;
    });
    schedule();
    return () => {
        generation++;
        stopWatching();
        frame.removeAttribute('src');
    };
}

export default { render };
