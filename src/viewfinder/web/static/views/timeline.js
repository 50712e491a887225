// The Photos view: being built (see lib/router.js for the view contract).

import { heading, statusLine } from "../lib/dom.js";

export async function render(root) {
  root.append(heading("Photos"), statusLine("This view is being built."));
}
