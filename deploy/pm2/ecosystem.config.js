// csmstream under PM2: one supervised `csmstream serve`, restarted when it dies.
//
//   pm2 start deploy/pm2/ecosystem.config.js      # then: pm2 logs csmstream, pm2 save, pm2 startup
//
// Settings come from the environment PM2 is started in: every CSMSTREAM_* variable of `csmstream serve`
// (src/csmstream/config.py: CSMSTREAM_PORT, CSMSTREAM_HOST, CSMSTREAM_ENGINE, CSMSTREAM_MODEL,
// CSMSTREAM_VOICES_DIR, CSMSTREAM_API_KEYS, ...) and HF_TOKEN for the gated weights are passed through to the
// server. Three more are read by this file only:
//   CSMSTREAM_BIN            the csmstream executable (default: `csmstream` found on PATH, e.g. a venv's bin)
//   CSMSTREAM_DRAIN_TIMEOUT  seconds running streams get to finish on a stop (default 30)
//   CSMSTREAM_PM2_NAME       the process name (default csmstream)
//
// Stopping: PM2 sends its daemon's PM2_KILL_SIGNAL, SIGINT unless set, which stops the server at once (streams
// are cut after 5 s). For a graceful stop start the PM2 daemon with PM2_KILL_SIGNAL=SIGTERM (the variable is
// read by the daemon, not per app: `pm2 kill`, then `PM2_KILL_SIGNAL=SIGTERM pm2 start ...`, and
// Environment=PM2_KILL_SIGNAL=SIGTERM in the unit `pm2 startup` writes). SIGTERM makes the server drain: no new
// requests, running streams finish (or end with an error at the drain timeout), exit 0. PM2 waits
// kill_timeout ms before SIGKILL, so kill_timeout is longer than the drain timeout.
// A server whose engine failed exits with status 3; PM2 restarts it (with a growing back-off when that
// repeats, exp_backoff_restart_delay).

const drainTimeoutS = Number(process.env.CSMSTREAM_DRAIN_TIMEOUT || 30);

module.exports = {
  apps: [
    {
      name: process.env.CSMSTREAM_PM2_NAME || "csmstream",
      script: process.env.CSMSTREAM_BIN || "csmstream",
      args: ["serve", "--drain-timeout", String(drainTimeoutS)],
      interpreter: "none", // an executable, not a Node script
      exec_mode: "fork", // one process owns the GPU; run more instances on more ports or machines
      instances: 1,
      autorestart: true,
      // a server that dies at once (bad settings) is not restarted forever in a tight loop
      min_uptime: "10s",
      max_restarts: 10,
      exp_backoff_restart_delay: 200,
      kill_timeout: (drainTimeoutS + 10) * 1000,
      // stdout carries "csmstream: listening on ...", stderr the log
      merge_logs: true,
      time: true,
      env: {
        PYTHONUNBUFFERED: "1",
      },
    },
  ],
};
