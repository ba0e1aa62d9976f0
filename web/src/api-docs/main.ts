// The interactive API docs page (/api/docs). Swagger UI is bundled from npm so the page works with
// no internet access; it is its own entry so none of it lands in the SPA bundle.
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-es-bundle.js";
import "swagger-ui-dist/swagger-ui.css";
import "./docs.css";

SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // The default validator badge calls validator.swagger.io; never leave the origin.
  validatorUrl: null,
  // Same-origin requests carry the session cookie, so "Try it out" acts as the signed-in user.
  withCredentials: true,
  displayRequestDuration: true,
  tryItOutEnabled: false,
});
