"""Scale-out: many engine replicas behind one address, on Ray Serve (`csmstream serve --ray`).

`headroom.py` says how much real-time room a replica has left (plain Python, no Ray); `router.py` routes each
new request to the replica with the most of it; `autoscale.py` sizes the deployment from the streams it
carries; `replica.py` is one replica (one engine, the usual FastAPI app); `deployment.py` turns flags and
settings into the Serve application; `ray_serve.py` starts it from `csmstream serve --ray`.
Only these modules import Ray, and nothing outside this package imports them except `commands/serve.py`.
"""
