"""The utterances simulated users ask for: varied, everyday, about 3 to 12 seconds of speech each.

Most have two or more sentences, so an engine that speaks sentence by sentence (piper) is still streaming
when a listener cancels or hangs up; a few are one sentence, as many real requests are."""

from __future__ import annotations

import random

TEXTS: tuple[str, ...] = (
    "Your table for four is booked for eight tonight.",
    "Turn left at the next light. The pharmacy is on your right, just past the bakery.",
    "Good morning! It is sunny and mild today, with a light breeze from the west and a high of twenty-two.",
    "I could not find that order. Could you read me the number on your receipt, one digit at a time?",
    "The meeting moved to Thursday at three. I sent the new invitation to everyone on the list, and two "
    "people have already accepted.",
    "Thanks for waiting. Your package left the warehouse this morning. It should arrive by Friday, and you "
    "will get a message with a tracking link as soon as the driver is on the way.",
    "Here is a quick recipe. Warm some olive oil, add a sliced onion and a pinch of salt, and let it soften "
    "for ten minutes. Then stir in the tomatoes and simmer until the sauce is thick.",
    "The train to the coast leaves at half past nine, so we should pack tonight. Bring a warm jacket, "
    "because the wind near the water can be cold even in summer.",
    "Sorry, I didn't catch that. Could you say it again?",
    "Your flight is on time. Boarding starts at gate twelve in forty minutes, and the walk from security "
    "takes about ten. There is a coffee stand next to the gate if you would like something before you board.",
    "Remember to water the basil on Monday. The ferns can wait until the weekend.",
    "Welcome back! Last time we stopped at chapter seven, where the two friends finally reach the "
    "lighthouse. Shall I pick up from there, or would you like a short summary first?",
)


def pick_text(rng: random.Random) -> str:
    return TEXTS[rng.randrange(len(TEXTS))]
