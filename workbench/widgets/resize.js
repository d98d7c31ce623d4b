// An invisible helper placed in a panel with plotly FigureWidgets. Plotly sizes a figure when it is
// first drawn; drawn inside a hidden tab it takes plotly's default 700 px and never adapts (the
// anywidget FigureWidget gets no Lumino resize messages). When the panel's width changes (its tab
// is shown, the notebook is resized), this sends a window 'resize' event, on which plotly resizes
// every figure made with config.responsive to its container.
function render({ el }) {
    el.style.cssText = 'width: 100%; height: 0; overflow: hidden;';
    let observer = null;
    let lastWidth = -1;
    let timer = null;
    const nudge = () => {
        clearTimeout(timer);
        timer = setTimeout(() => window.dispatchEvent(new Event('resize')), 60);
    };
    const attach = () => {
        if (!el.isConnected) {
            setTimeout(attach, 100);
            return;
        }
        const panel = el.parentElement || el;
        observer = new ResizeObserver((entries) => {
            const width = Math.round(entries[entries.length - 1].contentRect.width);
            if (width > 0 && width !== lastWidth) {
                lastWidth = width;
                nudge();
            }
        });
        observer.observe(panel);
    };
    attach();
    return () => {
        clearTimeout(timer);
        if (observer) {
            observer.disconnect();
        }
    };
}

export default { render };
