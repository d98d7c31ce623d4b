// Front end of workbench.widgets.netron.NodeTable: the nodes of an overlay as a sortable table.
// A click on a header sorts by it (again: the other way); a click on a row sets `selected`
// (the kernel then centres that node in Netron); `selected` set from the kernel highlights its row.
// Every cell is text (textContent): node names and module paths come from the model.
function render({ model, el }) {
    el.classList.add('wb-node-table');
    const box = document.createElement('div');
    box.style.cssText = 'max-height: 320px; overflow: auto; font-size: 12px;';
    el.appendChild(box);

    const value = (row, key) => (row[key] === null || row[key] === undefined ? '' : row[key]);
    const compare = (key, desc) => (a, b) => {
        const x = value(a, key);
        const y = value(b, key);
        const order = (typeof x === 'number' && typeof y === 'number') ? x - y : String(x).localeCompare(String(y));
        return desc ? -order : order;
    };

    const draw = () => {
        const columns = model.get('columns');
        const key = model.get('sort_by');
        const desc = model.get('descending');
        const rows = [...model.get('rows')].sort(compare(key, desc));
        const selected = model.get('selected');
        const table = document.createElement('table');
        table.className = 'wb-node-table-grid';
        table.style.cssText = 'border-collapse: collapse; width: 100%;';
        const head = table.createTHead().insertRow();
        for (const [name, label] of columns) {
            const th = document.createElement('th');
            th.textContent = label + (name === key ? (desc ? ' \u25BC' : ' \u25B2') : '');
            th.dataset.key = name;
            th.style.cssText = 'cursor: pointer; text-align: left; padding: 2px 6px; border-bottom: 1px solid #d0d7de; position: sticky; top: 0; background: var(--jp-layout-color1, #fff);';
            th.addEventListener('click', () => {
                model.set('descending', name === key ? !desc : true);
                model.set('sort_by', name);
                model.save_changes();
            });
            head.appendChild(th);
        }
        const body = table.createTBody();
        for (const row of rows) {
            const tr = body.insertRow();
            tr.className = 'wb-node-row' + (row.name === selected ? ' wb-row-selected' : '');
            tr.dataset.node = row.name;
            tr.style.cssText = 'cursor: pointer;' + (row.name === selected ? ' background: #fff8c5;' : '');
            for (const [name] of columns) {
                const td = tr.insertCell();
                const cell = value(row, name);
                td.textContent = (typeof cell === 'number') ? (row[`${name}_text`] || String(cell)) : String(cell);
                td.style.cssText = 'padding: 1px 6px; border-bottom: 1px solid #eaeef2; white-space: nowrap;' +
                    (typeof cell === 'number' ? ' text-align: right;' : '');
            }
            tr.addEventListener('click', () => {
                model.set('selected', row.name);
                model.set('clicks', model.get('clicks') + 1);
                model.save_changes();
            });
        }
        box.textContent = '';
        box.appendChild(table);
        const mark = box.querySelector('tr.wb-row-selected');
        if (mark && mark.scrollIntoView) {
            mark.scrollIntoView({ block: 'nearest' });
        }
    };
    for (const name of ['rows', 'columns', 'sort_by', 'descending', 'selected']) {
        model.on(`change:${name}`, draw);
    }
    draw();
}

export default { render };
