// Renders /openapi.json with Swagger UI (served by the gateway from a pinned package).
window.addEventListener('load', () => {
  // eslint-disable-next-line no-undef
  window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });
});
