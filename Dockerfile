# meshbox server image (not built in CI here: no Docker engine on the build machines).
FROM node:24-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY shared ./shared
COPY server ./server
COPY client-cli ./client-cli
COPY scripts/services ./scripts/services
COPY tsconfig.json ./
ENV MESHBOX_HOST=0.0.0.0 MESHBOX_PORT=8443
EXPOSE 8443
USER node
ENTRYPOINT ["node", "client-cli/src/main.js"]
CMD ["serve"]
