/**
 * The dashboard's stylesheet, inlined into every page so that the service serves no assets.
 * Light theme, system fonts. The state colours pass WCAG contrast for their text (badges) and
 * 3:1 against white for the grid cells; "done with failures" is striped as well as coloured, so
 * it does not rest on telling red from green.
 */
export const DASHBOARD_CSS = `
:root{--bg:#f6f8fa;--surface:#fff;--border:#d0d7de;--text:#1f2328;--muted:#59636e;--link:#0969da;
--ok:#1f883d;--ok-soft:#dafbe1;--fail:#cf222e;--fail-soft:#ffebe9;--warn:#bc4c00;--warn-soft:#fff1e5;
--run:#0969da;--run-soft:#ddf4ff;--idle:#e6eaef;--purple:#8250df;--purple-soft:#fbefff;--radius:10px}
*{box-sizing:border-box}
html{background:var(--bg)}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--text);-webkit-font-smoothing:antialiased}
a{color:var(--link);text-decoration:none}a:hover{text-decoration:underline}
code,.mono{font-family:ui-monospace,SFMono-Regular,"SF Mono",Menlo,Consolas,monospace;font-size:12.5px}
.topbar{display:flex;align-items:center;gap:16px;padding:12px 24px;background:var(--surface);border-bottom:1px solid var(--border)}
.brand{display:flex;align-items:center;gap:8px;font-weight:650;font-size:16px;color:var(--text)}
.logo{width:18px;height:18px;border-radius:4px;background:conic-gradient(var(--ok) 0 25%,var(--run) 0 50%,var(--ok) 0 75%,var(--idle) 0)}
.conn{margin-left:auto;color:var(--muted);font-size:12.5px}
.conn.bad{color:var(--fail)}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:22px;line-height:1.25;margin:0;font-weight:650;word-break:break-word}
h2{font-size:15px;margin:0 0 12px;font-weight:650}
h3{font-size:12.5px;margin:14px 0 8px;font-weight:600;color:var(--muted)}
.muted{color:var(--muted)}
.card{background:var(--surface);border:1px solid var(--border);border-radius:var(--radius);padding:16px 18px;margin-bottom:16px}
.card-head{display:flex;align-items:baseline;justify-content:space-between;gap:12px;flex-wrap:wrap}
.hero{display:flex;flex-wrap:wrap;align-items:flex-start;justify-content:space-between;gap:16px;margin-bottom:16px}
.hero .meta{margin-top:6px;color:var(--muted);display:flex;flex-wrap:wrap;gap:4px 14px}
.crumb{font-size:12.5px;margin-bottom:6px}
.reason{margin-top:8px;padding:8px 12px;border-radius:8px;background:var(--warn-soft);color:#7a2e00;max-width:70ch}
.actions{display:flex;flex-wrap:wrap;gap:8px;align-items:center}
.downloads{display:flex;flex-wrap:wrap;gap:6px;align-items:center}
.downloads .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600;margin-right:2px}
.actions .msg{flex-basis:100%;text-align:right;font-size:12.5px;color:var(--fail);min-height:1em}
button{font:inherit;font-weight:600;padding:6px 14px;border-radius:8px;border:1px solid var(--border);background:var(--surface);color:var(--text);cursor:pointer}
button:hover{background:#f3f4f6}
button:focus-visible{outline:2px solid var(--link);outline-offset:2px}
button.primary{background:var(--ok);border-color:#1a7f37;color:#fff}button.primary:hover{background:#1a7f37}
button.danger{color:var(--fail)}button.danger:hover{background:var(--fail-soft)}
button[disabled]{opacity:.6;cursor:progress}
.badge{display:inline-flex;align-items:center;gap:6px;padding:1px 10px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap;background:var(--idle);color:#424a53}
.badge-succeeded{background:var(--ok-soft);color:#116329}
.badge-partial{background:var(--warn-soft);color:#953800}
.badge-failed{background:var(--fail-soft);color:#a40e26}
.badge-running,.badge-pending{background:var(--run-soft);color:#0550ae}
.badge-budget_exhausted{background:var(--purple-soft);color:#6639ba}
.badge-running::before{content:"";width:7px;height:7px;border-radius:50%;background:currentColor;animation:pulse 1.2s ease-in-out infinite}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(165px,1fr));gap:16px;margin-bottom:16px}
.stat{background:var(--surface);border:1px solid var(--border);border-radius:var(--radius);padding:14px 18px}
.stat .label{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
.stat .value{font-size:26px;font-weight:650;font-variant-numeric:tabular-nums;margin:2px 0 6px}
.stat .value small{font-size:14px;font-weight:500;color:var(--muted)}
.stat .sub{font-size:12.5px;color:var(--muted);font-variant-numeric:tabular-nums}
.ok{color:var(--ok)}.fail{color:var(--fail)}
.bar{display:flex;overflow:hidden;border-radius:999px;background:var(--idle)}
.bar-sm{height:8px;min-width:100px}.bar-lg{height:10px;margin-top:4px}
.bar-ok{background:var(--ok);transition:width .4s ease}.bar-failed{background:var(--fail);transition:width .4s ease}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12.5px;color:var(--muted)}
.legend span{display:inline-flex;align-items:center;gap:6px}
.legend i{width:12px;height:12px;border-radius:3px;display:inline-block}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(20px,1fr));gap:4px}
.grid.dense{grid-template-columns:repeat(auto-fill,minmax(11px,1fr));gap:2px}
.cell{aspect-ratio:1;border-radius:4px;background:var(--idle);box-shadow:inset 0 0 0 1px rgba(31,35,40,.06)}
.dense .cell{border-radius:2px}
.cell[data-state=done]{background:var(--ok)}
.cell[data-state=partial]{background:repeating-linear-gradient(135deg,var(--fail) 0 3px,#e8784f 3px 6px)}
.cell[data-state=redone]{background:repeating-linear-gradient(135deg,var(--ok) 0 3px,#6fd08c 3px 6px)}
.cell[data-state=running]{background:linear-gradient(to top,var(--run) var(--p,0%),#b6dcff var(--p,0%));box-shadow:inset 0 0 0 2px var(--run);animation:glow 1.6s ease-in-out infinite}
.cell[data-state=pending]{background:var(--idle)}
.legend i[data-state]{aspect-ratio:auto}
/* One round needs no heading; a rerun of failed items adds the second. */
#rounds>.round:only-child>h3{display:none}
@keyframes pulse{50%{opacity:.35}}
@keyframes glow{50%{filter:brightness(1.15)}}
@media (prefers-reduced-motion:reduce){.cell,.badge::before{animation:none!important}.bar span{transition:none}}
.chart{position:relative;padding-left:44px}
.chart svg{display:block;width:100%;height:200px;background:linear-gradient(to bottom,transparent calc(50% - .5px),#eef1f4 calc(50% - .5px) calc(50% + .5px),transparent calc(50% + .5px));border-bottom:1px solid var(--border);border-left:1px solid var(--border);overflow:visible}
.chart .y{position:absolute;left:0;width:38px;text-align:right;font-size:11.5px;color:var(--muted);font-variant-numeric:tabular-nums}
.chart .y.top{top:-7px}.chart .y.mid{top:calc(100px - 8px)}.chart .y.bottom{top:calc(200px - 10px)}
.chart .x{display:flex;justify-content:space-between;font-size:11.5px;color:var(--muted);margin-top:4px}
.chart .empty{position:absolute;inset:0 0 20px 44px;display:flex;align-items:center;justify-content:center;color:var(--muted)}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th{text-align:left;font-size:12px;font-weight:600;color:var(--muted);padding:6px 10px;border-bottom:1px solid var(--border);white-space:nowrap}
td{padding:8px 10px;border-bottom:1px solid #eaeef2;vertical-align:top}
tr:last-child td{border-bottom:0}
.runs tbody tr:hover{background:#f6f8fa}
td.num,th.num{text-align:right}
.runs .job{font-weight:600}
.runs .id{display:block;font-size:12px;color:var(--muted)}
.progress-cell{min-width:150px}.progress-cell .nums{font-size:12px;color:var(--muted);margin-top:3px}
pre.error{margin:0;white-space:pre-wrap;word-break:break-word;max-height:9em;overflow:auto;background:var(--fail-soft);color:#82071e;padding:6px 8px;border-radius:6px;font-size:12px}
.scroll{overflow-x:auto}
.budgets{display:grid;grid-template-columns:repeat(auto-fit,minmax(180px,1fr));gap:12px}
.budget{border:1px solid #eaeef2;border-radius:8px;padding:10px 12px}
.empty-state{text-align:center;padding:48px 16px;color:var(--muted)}
.empty-state code{background:var(--idle);padding:2px 6px;border-radius:4px;color:var(--text)}
.cols{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px}
.cols>.card{margin-bottom:0}.cols{margin-bottom:16px}
.small{font-size:12.5px}.warn{color:#7a2e00}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.nav{display:flex;gap:4px}.nav a{color:var(--muted);font-weight:600;padding:4px 10px;border-radius:6px}
.nav a[aria-current=page]{color:var(--text);background:var(--idle)}
a.button{display:inline-block;font-weight:600;padding:6px 14px;border-radius:8px;border:1px solid var(--border);background:var(--surface);color:var(--text)}
a.button:hover{background:#f3f4f6;text-decoration:none}
.run-id,.runs .id,.key,code{overflow-wrap:anywhere}
.hero-main{min-width:0;flex:1 1 320px}
input,select{font:inherit;padding:5px 8px;border:1px solid var(--border);border-radius:6px;background:var(--surface);color:var(--text);max-width:100%}
input:focus-visible,select:focus-visible,summary:focus-visible{outline:2px solid var(--link);outline-offset:1px}
label{display:inline-flex;align-items:center;gap:6px;flex-wrap:wrap}
.filters{display:flex;flex-wrap:wrap;align-items:center;gap:10px 16px;padding:12px 16px}
.filters label{font-weight:600;font-size:12.5px;color:var(--muted)}
.filters input{width:14em}
.filter-error{flex-basis:100%;margin:0;color:var(--fail);font-weight:600}
.finish h2{margin-bottom:8px}
.finish-forms{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,320px),1fr));gap:16px}
.finish-form{border:1px solid #eaeef2;border-radius:8px;padding:12px 14px}
.finish-form p{margin:0 0 10px}
.finish .msg{margin-top:10px;font-size:12.5px;color:var(--fail);min-height:1em}
fieldset{border:0;padding:0;margin:0 0 10px;min-width:0}
legend{font-weight:600;font-size:12.5px;color:var(--muted);padding:0;margin-bottom:6px}
.budget-fields .fields{display:flex;flex-wrap:wrap;gap:8px 16px}
.budget-fields input{width:9em}
details.budget-fields{margin-bottom:10px}details.budget-fields summary{cursor:pointer;color:var(--link);margin-bottom:8px}
.choices{display:flex;flex-wrap:wrap;gap:6px 14px}
.reason-choice.none{opacity:.55}
.reason-choice .count{font-variant-numeric:tabular-nums;color:var(--muted)}
.upgrade{margin:0 0 12px;padding:10px 12px;border-radius:8px;background:var(--purple-soft)}
.upgrade p{margin:4px 0 0}
.reason{display:inline-block;padding:0 8px;border-radius:999px;font-size:12px;font-weight:600;background:var(--idle);color:#424a53}
.reason-error,.reason-crashed{background:var(--fail-soft);color:#a40e26}.reason-timeout,.reason-budget{background:var(--warn-soft);color:#953800}
.reason-non_retriable,.reason-schema,.reason-corrupt{background:var(--purple-soft);color:#6639ba}
.groups{display:flex;flex-direction:column;gap:8px;margin-bottom:12px}
.group{border:1px solid #eaeef2;border-radius:8px}
.group summary{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 10px;padding:10px 12px;cursor:pointer;list-style:none}
.group summary::-webkit-details-marker{display:none}
.group summary::before{content:"";width:0;height:0;border:5px solid transparent;border-left:6px solid var(--muted);align-self:center;transition:transform .15s}
.group[open] summary::before{transform:rotate(90deg) translateX(2px)}
.group .signature{flex:1 1 240px;min-width:0;font-weight:600}
.group-count{white-space:nowrap}
.samples{flex-basis:100%;display:flex;flex-wrap:wrap;gap:4px 8px;font-size:12px;color:var(--muted)}
.group-body{padding:0 12px 12px}
pre.message,pre.stack,pre.log,pre.example{margin:6px 0 0;white-space:pre-wrap;overflow-wrap:anywhere;max-height:16em;overflow:auto;padding:6px 8px;border-radius:6px;font-size:12px}
pre.message{background:var(--fail-soft);color:#82071e}pre.stack,pre.log,pre.example{background:var(--bg);color:var(--text)}
details.all-failed summary{cursor:pointer;color:var(--link);margin-bottom:8px}
.chart-note{margin:8px 0 0}
.schedules .next{margin:0;padding-left:1.2em}
.schedules .args{font-size:12px}
.fire-msg{font-size:12.5px;margin-top:6px;max-width:24em;overflow-wrap:anywhere}
.unavailable{margin:0;padding-left:1.2em}
.notice{max-width:720px}.notice h1{margin-bottom:10px}.notice-message{overflow-wrap:anywhere}
.sign-in{max-width:720px;margin:24px auto}.sign-in h1{margin-bottom:12px}.sign-in h2{margin-top:18px}
.token-form{display:flex;flex-wrap:wrap;gap:8px;align-items:center}.token-form input{width:22em}
@media (max-width:860px){.cols{grid-template-columns:1fr}main{padding:14px}.hide-sm{display:none}.hero .actions{width:100%}.topbar{padding:10px 14px;gap:10px}.stats{grid-template-columns:repeat(auto-fit,minmax(140px,1fr))}}
/* At phone width a table's rows stack: each a small grid of labelled cells, nothing to scroll. */
@media (max-width:560px){
table.stack,table.stack tbody{display:block}table.stack thead{display:none}
table.stack tr{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:6px 12px;padding:10px 0;border-bottom:1px solid #eaeef2}
table.stack tr:last-child{border-bottom:0}
table.stack td{display:block;border:0;padding:0;min-width:0;text-align:left}
table.stack td:first-child,table.stack td.wide{grid-column:1/-1}
table.stack td[data-label]::before{content:attr(data-label);display:block;font-size:11px;font-weight:600;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
table.stack .progress-cell{min-width:0}
.card.scroll{padding:8px 14px}
}
@media (max-width:520px){.conn{display:none}.filters input{width:100%}.filters label{flex:1 1 100%}.token-form input{width:100%}.token-form label{flex:1 1 100%}.bar-sm{min-width:60px}.progress-cell{min-width:110px}}
`;
