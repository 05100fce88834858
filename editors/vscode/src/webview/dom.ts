// What the webview pages share (runs in the webview, loaded before each page's script): small
// helpers that build elements. No imports: tsc emits it as a plain script, and its functions
// are globals of the page. Text always goes in as text nodes.

/* eslint-disable @typescript-eslint/no-unused-vars -- used by the pages' scripts */

/** An element with attributes and children (strings become text nodes). */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: Array<Node | string>
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** A button that runs `onClick`. */
function button(label: string, onClick: () => void, attributes: Record<string, string> = {}): HTMLButtonElement {
  const node = el("button", { type: "button", ...attributes }, label);
  node.addEventListener("click", onClick);
  return node;
}
