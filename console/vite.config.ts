import { defineConfig } from "vite";

// The built files are committed under the server crate and embedded in the binary, so their
// names are fixed (no content hashes): the server gives them ETags instead.
export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "../crates/modelbay-server/assets/console",
    emptyOutDir: true,
    assetsDir: "",
    modulePreload: false,
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: "app.js",
        chunkFileNames: "[name].js",
        assetFileNames: "app[extname]",
      },
    },
  },
});
