import { render } from "preact";
import { html } from "htm/preact";
import { App } from "./app";
import "./style.css";
import "uplot/dist/uPlot.min.css";

render(html`<${App} />`, document.getElementById("app")!);
