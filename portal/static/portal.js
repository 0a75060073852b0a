window.portal = {};
