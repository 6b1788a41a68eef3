// Built by scripts/ui-build.sh into dist/; the platform serves index.html at / and the
// bundles under /ui/ (see __init__.py). `npm run dev` proxies the API to SHIPYARD_URL.
import { defineConfig } from "vite";

const target = process.env.SHIPYARD_URL || "http://127.0.0.1:8080";

export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      output: {
        manualChunks: { charts: ["echarts"], graph: ["cytoscape", "cytoscape-dagre"] },
      },
    },
  },
  server: {
    proxy: Object.fromEntries(
      ["/api", "/apis", "/serving", "/tracking", "/registry", "/metrics"].map((p) => [p, target]),
    ),
  },
});
