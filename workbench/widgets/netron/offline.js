// Loaded by the workbench's Netron page right after Netron's index.js, before its modules.
// Netron asks ipinfo.io where the user is, shows a cookie-consent dialog that blocks the graph
// until "Accept" is clicked, and then sends Google Analytics events. Inside a notebook the
// model is the user's own and the machine may be offline: consent is treated as given (no
// dialog, no ipinfo.io request) and telemetry is off (no analytics request). The page's
// Content-Security-Policy (connect-src 'self') refuses any other outside request.
(function () {
    'use strict';
    var exportsObject = window.exports;
    if (!exportsObject || typeof exportsObject.preload !== 'function') {
        console.warn('workbench: Netron changed its loader; offline patch not applied (CSP still blocks outside requests).');
        return;
    }
    var patch = function () {
        var browser = exportsObject.browser;
        var Host = browser && browser.Host;
        if (!Host || !Host.prototype || typeof Host.prototype.view !== 'function') {
            console.warn('workbench: Netron changed browser.Host; offline patch not applied.');
            return;
        }
        var getCookie = Host.prototype._getCookie;
        Host.prototype._getCookie = function (name) {
            if (name === 'consent') {
                return 'workbench-offline';
            }
            return typeof getCookie === 'function' ? getCookie.call(this, name) : '';
        };
        var view = Host.prototype.view;
        Host.prototype.view = function (viewObject) {
            if (this._environment) {
                // Netron sends telemetry only from a packaged build; this one must not.
                this._environment.packaged = false;
            }
            return view.call(this, viewObject);
        };
        if (Host.prototype.event) {
            Host.prototype.event = function () {};
        }
        if (Host.prototype.exception) {
            Host.prototype.exception = function () {};
        }
        document.documentElement.setAttribute('data-workbench-offline', '1');
    };
    var preload = exportsObject.preload;
    exportsObject.preload = function (callback) {
        return preload.call(exportsObject, function (value, error) {
            if (!error) {
                try {
                    patch();
                } catch (e) {
                    console.warn('workbench: offline patch failed', e);
                }
            }
            callback(value, error);
        });
    };
}());
