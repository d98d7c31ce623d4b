// An invisible helper placed in a panel with plotly FigureWidgets (in `.wb-figure` slots). Plotly
// sizes a figure when it is first drawn: drawn inside a hidden tab, or before its element is in
// the page, it takes plotly's default 700 px and never adapts (the anywidget FigureWidget gets no
// Lumino resize messages). Whenever a visible slot's figure is wider or narrower than the slot
// (a figure appeared, its tab was shown, the notebook was resized), this sends a window 'resize'
// event, on which plotly resizes every figure made with config.responsive to its container. A
// figure whose width plotly has pinned (layout.width, e.g. once drawn while hidden) is unpinned
// first: plotly's resize skips a figure with both a width and a height.
function mismatched(panel) {
    let found = false;
    for (const slot of panel.querySelectorAll('.wb-figure')) {
        const width = Math.round(slot.getBoundingClientRect().width);
        const svg = slot.querySelector('.main-svg');
        if (width > 0 && svg && Math.abs(Number(svg.getAttribute('width')) - width) > 2) {
            const plot = slot.querySelector('.js-plotly-plot');
            if (plot && plot.layout) {
                delete plot.layout.width;
            }
            found = true;
        }
    }
    return found;
}

function render({ el }) {
    el.style.cssText = 'width: 100%; height: 0; overflow: hidden;';
    let timer = null;
    let resizeObserver = null;
    let mutationObserver = null;
    let panel = null;
    const check = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
            if (panel && mismatched(panel)) {
                window.dispatchEvent(new Event('resize'));
            }
        }, 80);
    };
    const attach = () => {
        if (!el.isConnected) {
            setTimeout(attach, 100);
            return;
        }
        panel = el.parentElement || el;
        resizeObserver = new ResizeObserver(check);
        resizeObserver.observe(panel);
        mutationObserver = new MutationObserver(check);
        mutationObserver.observe(panel, { childList: true, subtree: true });
        check();
    };
    attach();
    return () => {
        clearTimeout(timer);
        if (resizeObserver) {
            resizeObserver.disconnect();
        }
        if (mutationObserver) {
            mutationObserver.disconnect();
        }
    };
}

export default { render };
