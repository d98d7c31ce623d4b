// Numbers on Netron's drawing (workbench.widgets.netron.overlay). Served as workbench-overlay.js.
//
// Polls wb-overlay.json (this page's own server: allowed by its CSP, and it works through the
// Jupyter server's proxy like the model file) and decorates Netron's SVG nodes by their DOM id,
// `node-name-<ONNX node name>`: class `wb-overlay`, `data-wb-metric`, `data-wb-value`, a fill on
// one scale, a short label and a hover title. A MutationObserver re-applies the decoration when
// Netron re-renders. A "select" command centres a node; a click on a node is reported back as
// wb-pick?name=<node>. Model strings go through textContent/setAttribute only, never markup.
(function () {
    'use strict';
    var SVG = 'http://www.w3.org/2000/svg';
    var PREFIX = 'node-name-';
    var POLL_MS = 250;
    var HIDDEN_POLL_MS = 3000;  // the browser tab is in the background
    var state = { revision: -1, overlay: null, select: null };
    var selectSeq = 0;
    var applying = false;
    var scheduled = false;

    function contrast(hex) {
        var v = parseInt(String(hex).slice(1), 16);
        var lum = (0.299 * ((v >> 16) & 255) + 0.587 * ((v >> 8) & 255) + 0.114 * (v & 255)) / 255;
        return lum > 0.55 ? '#000' : '#fff';
    }

    function clear(element) {
        element.classList.remove('wb-overlay');
        element.removeAttribute('data-wb-metric');
        element.removeAttribute('data-wb-value');
        element.querySelectorAll('.wb-overlay-label, .wb-overlay-title').forEach(function (e) { e.remove(); });
        element.querySelectorAll('.node-item-type path, .node-item-type text').forEach(function (e) {
            e.style.removeProperty('fill');
        });
    }

    function decorate(element, metric, node) {
        element.classList.add('wb-overlay');
        element.setAttribute('data-wb-metric', metric);
        element.setAttribute('data-wb-value', node.value === null || node.value === undefined ? '' : String(node.value));
        if (node.color) {
            element.querySelectorAll('.node-item-type path').forEach(function (e) { e.style.setProperty('fill', node.color); });
            element.querySelectorAll('.node-item-type text').forEach(function (e) { e.style.setProperty('fill', contrast(node.color)); });
        }
        var title = document.createElementNS(SVG, 'title');
        title.setAttribute('class', 'wb-overlay-title');
        title.textContent = node.title || String(node.value);
        element.insertBefore(title, element.firstChild);
        var border = element.querySelector('path.node-border') || element;
        var box = null;
        try { box = border.getBBox(); } catch (e) { box = null; }
        var label = document.createElementNS(SVG, 'text');
        label.setAttribute('class', 'wb-overlay-label');
        label.setAttribute('x', box ? String(box.x + box.width + 4) : '0');
        label.setAttribute('y', box ? String(box.y + 11) : '-4');
        label.setAttribute('style', 'font: 10px sans-serif; fill: #24292f; pointer-events: none;');
        label.textContent = node.label || String(node.value);
        element.appendChild(label);
    }

    function legend(overlay) {
        var box = document.getElementById('wb-overlay-legend');
        if (!overlay) {
            if (box) { box.remove(); }
            return;
        }
        if (!box) {
            box = document.createElement('div');
            box.id = 'wb-overlay-legend';
            box.setAttribute('style', 'position: absolute; top: 8px; right: 8px; z-index: 10; background: rgba(255,255,255,0.92); ' +
                'border: 1px solid #d0d7de; border-radius: 4px; padding: 4px 8px; font: 11px sans-serif; color: #24292f; max-width: 40%;');
            document.body.appendChild(box);
        }
        box.textContent = '';
        var head = document.createElement('div');
        head.setAttribute('style', 'font-weight: bold; margin-bottom: 2px;');
        head.textContent = overlay.metric + (overlay.unit ? ' (' + overlay.unit + ')' : '');
        box.appendChild(head);
        (overlay.scale || []).forEach(function (item) {
            var row = document.createElement('div');
            var swatch = document.createElement('span');
            swatch.setAttribute('style', 'display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; background: ' +
                (/^#[0-9a-fA-F]{3,8}$/.test(item.color) ? item.color : '#999'));
            row.appendChild(swatch);
            row.appendChild(document.createTextNode(item.label));
            box.appendChild(row);
        });
    }

    function apply() {
        scheduled = false;
        var canvas = document.getElementById('canvas');
        if (!canvas) {
            return;
        }
        applying = true;
        try {
            canvas.querySelectorAll('g.wb-overlay').forEach(clear);
            var overlay = state.overlay;
            if (overlay && overlay.nodes) {
                canvas.querySelectorAll('g.node[id^="' + PREFIX + '"]').forEach(function (element) {
                    var node = overlay.nodes[element.id.slice(PREFIX.length)];
                    if (node) {
                        decorate(element, overlay.metric, node);
                    }
                });
            }
            legend(overlay);
            document.documentElement.setAttribute('data-wb-overlay-revision', String(state.revision));
        } finally {
            applying = false;
        }
    }

    function schedule() {
        if (!scheduled) {
            scheduled = true;
            window.requestAnimationFrame(apply);
        }
    }

    function centre(name) {
        var canvas = document.getElementById('canvas');
        var container = document.getElementById('target');
        document.querySelectorAll('g.wb-selected').forEach(function (e) {
            e.classList.remove('wb-selected', 'select');
        });
        if (!canvas || !container || !name) {
            return false;
        }
        var element = document.getElementById(PREFIX + name);
        if (!element) {
            return false;
        }
        element.classList.add('wb-selected', 'select');  // Netron's own red border (.select > .node-border)
        var rect = element.getBoundingClientRect();
        var view = container.getBoundingClientRect();
        container.scrollTo({
            left: container.scrollLeft + (rect.left + rect.width / 2) - (view.left + container.clientWidth / 2),
            top: container.scrollTop + (rect.top + rect.height / 2) - (view.top + container.clientHeight / 2),
            behavior: 'auto'
        });
        document.documentElement.setAttribute('data-wb-selected', name);
        return true;
    }

    function receive(next) {
        if (!next || next.revision === state.revision || !('overlay' in next)) {
            return;
        }
        var overlayChanged = JSON.stringify(next.overlay) !== JSON.stringify(state.overlay);
        state = next;
        if (overlayChanged) {
            apply();
        }
        if (next.select && next.select.seq !== selectSeq) {
            // Netron may not have drawn yet: keep trying until the node exists.
            if (centre(next.select.name) || !next.select.name) {
                selectSeq = next.select.seq;
            }
        }
    }

    // After a failed poll (the kernel stopped the server, or restarted) wait twice as long each
    // time, up to MAX_BACKOFF_MS, instead of asking four times a second forever.
    var MAX_BACKOFF_MS = 30000;
    var backoff = 0;

    function poll() {
        var since = state.revision >= 0 ? '?since=' + state.revision : '';
        fetch('wb-overlay.json' + since, { cache: 'no-store', credentials: 'same-origin' })
            .then(function (response) {
                if (!response.ok) { throw new Error('overlay ' + response.status); }
                return response.json();
            })
            .then(function (next) {
                backoff = 0;
                receive(next);
                if (state.select && state.select.seq !== selectSeq && centre(state.select.name)) {
                    selectSeq = state.select.seq;
                }
            })
            .catch(function () { backoff = Math.min(MAX_BACKOFF_MS, Math.max(2 * backoff, POLL_MS)); })
            .then(function () {
                var wait = document.hidden ? HIDDEN_POLL_MS : POLL_MS;
                window.setTimeout(poll, Math.max(wait, backoff));
            });
    }

    function onClick(event) {
        var target = event.target;
        var element = target && target.closest ? target.closest('g.node[id^="' + PREFIX + '"]') : null;
        if (element) {
            var name = element.id.slice(PREFIX.length);
            document.documentElement.setAttribute('data-wb-picked', name);
            fetch('wb-pick?name=' + encodeURIComponent(name), { cache: 'no-store', credentials: 'same-origin' }).catch(function () {});
        }
    }

    function start() {
        new MutationObserver(function (mutations) {
            if (applying) {
                return;
            }
            for (var i = 0; i < mutations.length; i++) {
                var added = mutations[i].addedNodes;
                for (var j = 0; j < added.length; j++) {
                    var node = added[j];
                    if (node.nodeType === 1 && (node.id === 'canvas' || node.id === 'origin' ||
                        (node.classList && node.classList.contains('node')) || (node.querySelector && node.querySelector('#canvas, g.node')))) {
                        schedule();
                        return;
                    }
                }
            }
        }).observe(document.body, { childList: true, subtree: true });
        document.addEventListener('click', onClick, true);
        poll();
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', start);
    } else {
        start();
    }
}());
