# GeoDispatch engine image: build the TypeScript once, run dist/api/main.js as an unprivileged user.
# The uWebSockets.js binary (@trufflesuite/uws-js-unofficial) targets Node 20 on glibc 2.36: bookworm, not alpine.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# npm install, not npm ci: the lockfile omits msgpackr-extract's foreign-platform optional packages (see .ci/run)
RUN npm install --no-audit --no-fund
COPY tsconfig.json ./
COPY api ./api
COPY cluster ./cluster
COPY dispatch ./dispatch
COPY engine ./engine
COPY fixtures ./fixtures
COPY store ./store
COPY workers ./workers
COPY bench ./bench
COPY web ./web
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/fixtures ./fixtures
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/api/main.js"]
