// The book's own script (Jupyter Book adds every .js in _static/ to every page).
//
// Bootstrap's scrollspy highlights the section being read in the page's table of contents
// (.bd-toc-nav, on the right). A page without one, such as the glossary, has no headings to
// follow, and Bootstrap then watches every link of the page instead. It looks each link's target
// up as a CSS selector and throws on an id that is not a valid one: "#term-v1-v1.5" (Sphinx keeps
// the dot of a glossary term in its id). No table of contents on the page: no scrollspy.
document.addEventListener("DOMContentLoaded", () => {
  if (!document.querySelector(".bd-toc-nav")) {
    document.body.removeAttribute("data-bs-spy");
  }
});
