'use strict';
// Shows why the previous attempt failed (the server redirects here with
// a fragment, which is never sent to a server or logged).
document.addEventListener('DOMContentLoaded', function () {
  var msg = document.getElementById('msg');
  var reasons = {
    '#refused': 'Unknown API key.',
    '#expired': 'That login link was already used or has expired: ask for a new one (mfn ctl console).',
    '#out': 'You are logged out.'
  };
  msg.textContent = reasons[location.hash] || '';
});
