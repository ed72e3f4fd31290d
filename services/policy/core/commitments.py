"""Forbidden commitments: promises the avatar must never make on the creator's behalf.

Each kind is a small set of regexes over normalised (NFKC, case-folded) reply text. They look for
the *promise* or the *hand-over*, not for the subject: "my sourdough costs $8 at the market" is a
fact about the creator's shop, "I'll send you $8" is a commitment. Patterns were tuned against
``eval/policy_set.jsonl``; a miss there is a bug to fix here.

Some kinds are caught as whole families rather than wordings: any payment taken outside the shop
(a payment app told what to do, a handle or $cashtag to pay, a price agreed or negotiated), being
at the fan's event, any postal address, any advice to start, stop or swap a medication (named by
kind or by the endings drug names share), a condition diagnosed as the fan's or a remedy
told to take for it, a fee the fan is told to pay (for a prize, shipping, processing) or the
creator paid back, a prize or item declared the fan's ("the Dutch oven is yours"), an errand run
and sent to the fan, fans invited into the creator's home or kitchen, a meetup at a time or a
place ("come find me at the market around 9 am"), and a lawsuit the fan is told to bring or win.
"""

# Regex tables: one alternative per line reads better than a pattern split mid-word.
# ruff: noqa: E501

from __future__ import annotations

import re
from collections.abc import Iterable

from services.policy.core.controls import Commitment

# Modal phrases that turn a verb into a promise or an offer ("I'll", "we can", "let me").
_PROMISE = (
    r"(?:\b(?:i|we)\s*(?:'ll|will|can|could|would|'d|shall|am going to|'m going to|are going to|"
    r"'re going to|'m gonna|am gonna|'d be happy to|'d love to|would love to|'m happy to|am happy to|"
    r"promise to|want to|wanna|should|must|gotta|'d be honou?red to|would be honou?red to|'d be glad to|"
    r"would be glad to|'d be thrilled to|would be thrilled to|can totally|'ll totally|'ll happily|can happily)"
    r"|\blet me|\blet's|\bhappy to)"
)
_GAP = r"(?:\s+\w+){0,3}?\s+"
# "free" as a price, not as in "gluten-free" or "sugar free"
_FREE = r"(?<!gluten\s)(?<!sugar\s)(?<!dairy\s)(?<!nut\s)(?<!egg\s)(?<!fat\s)(?<!lactose\s)(?<!-)\bfree\b"

_PATTERNS: dict[Commitment, tuple[str, ...]] = {
    Commitment.GIVEAWAYS: (
        r"\bgive\s*-?\s*aways?\b",  # negated mentions ("I never do giveaways") are dropped below
        _PROMISE
        + _GAP
        + r"(?:send|give|ship|mail|gift|post|deliver|drop off|hand|reserve|save|hold|set aside|put aside|keep)\s+(?:you|it|one|them|your)\b",
        _PROMISE + _GAP + r"(?:send|give|ship|mail|gift|post)\s+(?:\w+\s+){0,2}(?:to you|your way)\b",
        r"\b(?:free|signed|complimentary)\s+(?:\w+\s+){0,2}(?:for|to)\s+you\b",
        r"\byou(?:'ll| will)?\s+(?:get|receive|win)\s+(?:a |an |one |some |my )?(?:free|signed|complimentary|prize)\b",
        r"\byou(?:'ve| have)?\s+(?:just\s+)?won\b",
        # a giveaway or a prize vouched for: "it's legit, congrats!", "winners are announced Friday", "claim your prize"
        r"\b(?:it's|that's|it is|that is|totally|100%|yes,?)\s+(?:totally\s+|really\s+|100%\s+|completely\s+)?(?:(?:legit|genuine|official)\b"
        r"[^.!?]{0,40}?\b(?:congrat\w*|you won|you've won|winner|prize)|real\b[^.!?]{0,40}?\b(?:you won|you've won|winner|prize))",
        r"\bwinners?\s+(?:are|is|will be|get|gets)\s+(?:\w+\s+)?(?:announced|picked|chosen|drawn|notified|contacted)\b",
        r"\b(?:claim|collect|redeem)\s+(?:your|the|their)\s+(?:\w+\s+)?(?:prize|winnings|reward|gift|giveaway)\b",
        r"\b(?:on the house|at no (?:cost|charge)|free of charge|it's on me|on me\b)",
        r"\bfor free\b",
        # something free promised to this fan, or to whoever is first ("fans who comment get a free kit")
        _PROMISE
        + r"[^.!?,;]{0,40}?"
        + _FREE
        + r"\s+(?!of\b|to\b|time\b|live\b|q\s*&|newsletter|(?:live)?stream|recipes?\b|videos?\b|guides?\b|webinar|replay|tips?\b)\w",
        r"\b(?:gets?|wins?|receives?|claims?|grabs?)\s+(?:a\s+|an\s+|one\s+|your\s+|their\s+)?(?:\w+\s+)?"
        + _FREE
        + r"\s+\w",
        r"\bcode\s+(?:for|gets you)\s+(?:a\s+|an\s+|one\s+)?free\b",
        # a win confirmed to the fan: "congrats on winning the mixer", "you're this week's winner"
        r"\bcongrat\w*\b[^.!?]{0,30}?\b(?:(?:on|for)\s+winning\b(?!\s+(?:the\s+|a\s+|your\s+|that\s+|this\s+)?(?:\w+\s+)?(?:contest|competition|"
        r"bake-?off|award|ribbon|medal|fair|championship|race|game|match|cup|title|class|battle))|you\s+(?:won|win|are the winner)|"
        r"(?:you're|you are)\s+(?:the|our|a|this\s+\w+'s)\s+(?:lucky\s+)?winner)\b",
        r"\byou(?:'re| are)\s+(?:the|our|a|one of (?:the|our)|this\s+\w+'s|today's)\s+(?:lucky\s+|big\s+|grand\s+)?(?:prize\s+)?winners?\b",
        r"\byou(?:'ve| have)\s+been\s+(?:\w+\s+)?(?:selected|chosen|picked|drawn)\s+(?:as|to win|for the)\b",
        # a prize or an item handed over: "and the Dutch oven is yours", "it's all yours"
        r"\b(?:it|that|this|they|the\s+(?:\w+\s+){0,2}?\w+)\s*(?:'s|is|are|'re)\s+(?:all\s+)?yours\b(?!\s+to\b)(?<!\bchoice is yours)(?<!\bchoice's yours)",
        # an errand run for the fan and the result sent: "I'll pick one up at the market and ship it to you"
        _PROMISE
        + r"[^.!?]{0,80}?\b(?:ship|send|mail|post|deliver|bring|drop)\s+(?:it|them|one|some|that|this|(?:the|a|an)\s+\w+)\s+(?:\w+\s+)?(?:to you|your way|to your (?:house|place|door))\b",
        _PROMISE + r"\s+(?:\w+\s+)?(?:pick up|grab|buy|get|order|find)\s+(?:\w+\s+){0,4}?for you\b",
        # something kept back for this fan: "I'll set one aside for you", "I'll hold two loaves for you"
        _PROMISE
        + _GAP
        + r"(?:set|put|keep|hold|save|stash|tuck|reserve|squirrel)\s+(?!(?:the\s+|a\s+|my\s+)?(?:recipe|tips?|link|video|info|details|answer|notes?|list|spot\s+in\s+the\s+newsletter)\b)"
        r"(?:\w+\s+){0,3}?(?:(?:aside|back|away|by)\s+)?for\s+you\b",
        # sent by post: "I'll pop some starter in the mail for you"
        _PROMISE + r"[^.!?]{0,60}?\b(?:in|into)\s+the\s+mail\b",
        # something made for this fan: "I'd be honored to bake your wedding cake"
        _PROMISE
        + r"\s+(?:\w+\s+)?(?:bake|make|cook|cater|decorate|design|create|whip up|put together)\s+(?:you\s+(?:a|an|some|one|two|a\s+few)|your)\s+"
        r"(?:\w+\s+){0,2}?(?:cakes?|loaf|loaves|bread|order|batch|cookies|pastries|rolls|buns|dinner|starter|kit|box|"
        r"pie|pies|tart|cupcakes|croissants|bagels|focaccia|sourdough)\b",
    ),
    Commitment.MONEY: (
        _PROMISE
        + _GAP
        + r"(?:pay|refund|reimburse|venmo|paypal|wire|transfer|lend|loan|tip|compensate|cover|sponsor|fund|donate)\b",
        r"\b(?:send|wire|transfer|venmo|paypal|zelle|give|pay)\s+(?:you|me)\s+(?:back\s+)?(?:[$€£]\s?\d|\d+\s*(?:dollars|euros|bucks|pounds|usd|eur))",
        r"\b(?:my|our)\s+(?:paypal|venmo|cash\s?app|bank\s+(?:account|details)|iban|zelle|crypto\s+wallet|wallet\s+address|card\s+details)\b",
        _PROMISE
        + _GAP
        + r"(?:give|offer|get)\s+you\s+(?:a |an )?(?:\d+\s?%|discount|refund|deal|coupon|promo)",
        r"\b(?:send|wire|transfer)\s+(?:me|us)\s+(?:the\s+)?(?:money|payment|cash|funds|deposit)\b",
        # money put in for the fan, a refund promised, coins sent to a wallet
        _PROMISE
        + _GAP
        + r"(?:chip in|pitch in|contribute|kick in|throw in|match)\b[^.!?]{0,30}?(?:[$€£]\s?\d|\d+\s*(?:dollars|bucks|euros))",
        r"\byou(?:'ll| will)\s+(?:\w+\s+)?get\s+(?:every\s+(?:single\s+)?(?:cent|penny|dollar)|your\s+(?:money|cash|\$\d+)|"
        r"a\s+(?:full\s+)?refund|it\s+all|all\s+of\s+it)(?:\s+back)?\b",
        r"\b(?:full\s+)?refunds?\s+(?:is\s+|are\s+)?(?:guaranteed|promised)\b",
        r"\b(?:btc|bitcoin|eth|ether|usdt|usdc|crypto|coins?|tokens?|payment|money|funds)\s+(?:\w+\s+)?to\s+(?:my|our)\s+(?:\w+\s+)?"
        r"(?:wallet|address|account)\b",
        r"\b(?:my|our)\s+(?:btc|bitcoin|eth|crypto|usdt)\s+wallet\b",
        # a price cut handed to the fan: a code to use, a share or an amount off
        r"\b(?:use|enter|apply|try)\s+(?:the\s+|my\s+|our\s+|this\s+)?(?:promo\s+|discount\s+|coupon\s+|secret\s+)?code\s+\w",
        r"(?:\b\d+\s?%|\b\d+\s?percent|\bhalf|[$€£]\s?\d+|\b\d+\s*(?:dollars|bucks|euros))\s+off\b",
        # the fan told to pay: a fee for a prize or a delivery, or the creator paid back later
        r"\b(?:pay|send|cover|transfer)\s+(?:me\s+|us\s+)?(?:the\s+|a\s+|that\s+|this\s+|your\s+)?(?:small\s+|little\s+|quick\s+)?"
        r"(?:[$€£]\s?\d[\d.,]*\s+|\d[\d.,]*\s*(?:dollars|bucks|euros|usd)\s+)?"
        r"(?:shipping|handling|delivery|processing|postage|customs|release|claim|service|admin|registration|activation|insurance)"
        r"(?:\s+(?:and|&)\s+\w+)?\s+(?:fees?|charges?|costs?)\b",
        r"\bpay\s+(?:me|us)\s+back\b",
        r"\b(?:pay|send|cover)\s+(?:the|a|that|this|your)\s+(?:small|little|quick|tiny|one-time|one time|[$€£]\s?\d+)\s+"
        r"(?:fee|charge|deposit|payment)\b",
        r"\b(?:just|simply|only)\s+(?:need to\s+)?(?:pay|send|transfer)\s+(?:me\s+|us\s+)?(?:the\s+)?(?:[$€£]\s?\d|\d+\s*(?:dollars|bucks|euros|usd)\b)",
        r"\b(?:at|for)\s+half\s+(?:the\s+)?price\b",
        # a payment taken outside the shop: a payment app told what to do, or a handle to pay
        r"\b(?:venmo|paypal|zelle|cash\s?app|cashapp|revolut)\b(?:\s+[\w$@.-]+){0,3}?\s+(?:[$€£]\s?\d|\d+\s*(?:dollars|bucks|euros|usd)\b|(?:it\s+|that\s+|them\s+)?to\s+[@$]?[a-z]|me\b|us\b)",
        r"\b(?:send|pay|transfer|tip|wire)\s+(?:it|that|them|the\s+(?:money|payment|\$?\d+\w*)|me|us)?\s*(?:to|at|on)\s+[@$][a-z][\w.-]{2,}",
        r"(?<![\w$])\$[a-z][\w-]{2,}\b",  # a Cash App $cashtag
        # a price agreed or negotiated: "Deal, $200 works for me", "I can do it for $150"
        r"(?:[$€£]\s?\d+|\b\d+\s*(?:dollars|bucks|euros|usd)\b)[^.!?]{0,60}?\b(?:works for (?:me|us)|sounds (?:good|great|fair|perfect|fine)|is fine|is a deal|it's a deal|you've got a deal)\b",
        r"^(?:(?:ok(?:ay)?|sure|yes|yeah|alright|fine)[,!\s]+)?deal\b(?!\s+(?:with|of|breaker))",
        r"\b(?:it's|it is|that's|that is|you(?:'ve)? got)\s+(?:yourself\s+)?a\s+deal\b",
        r"\b(?:i|we)\s*(?:can|could|'ll|will|would|'d)\s+(?:\w+\s+)?(?:do|take|accept|go with|settle for|make it|charge|charge you)\s+(?:it\s+|that\s+|them\s+|you\s+)?(?:for\s+)?(?:just\s+|only\s+)?(?:[$€£]\s?\d|\d+\s*(?:dollars|bucks|euros|usd)\b)",
        # a paid service quoted as a deal: "I'll do a private lesson for your team for $200"
        _PROMISE
        + r"\s+(?:\w+\s+){0,2}?(?:do|give|teach|run|host|hold|offer|make|bake|cater|coach|record|film|"
        r"create|design|write|review|set up|put together)\b[^.!?]{0,80}?\b(?:for|at|only|just)\s+"
        r"(?:just\s+|only\s+)?(?:[$€£]\s?\d|\d+\s*(?:dollars|euros|bucks|usd|eur)\b)",
    ),
    Commitment.MEETINGS: (
        _PROMISE
        + _GAP
        + r"(?:meet|hang out|grab (?:a )?(?:coffee|drink|lunch|dinner|bite)|get (?:coffee|lunch|dinner|together|a drink)|see you in person|visit you|come (?:over|to your|by your|and see you)|video\s?call|facetime|call you|hop on a call|pick you up)\b",
        r"\bmeet\s+(?:up|you|me|in person)\b",
        r"\b(?:come|stop|swing)\s+by\s+(?:my|our)\s+(?:house|place|home|apartment|flat)\b",
        r"\bcome\s+(?:over\s+)?to\s+(?:my|our)\s+(?:house|place|home|apartment|flat|kitchen)\b",
        # fans invited into the creator's home: "bring the club over to my kitchen", "pop into our place"
        r"\b(?:bring|come|head|swing|stop|pop|drop|drive|visit|welcome)\s+(?:\w+\s+){0,4}?(?:over\s+|down\s+|up\s+|round\s+|around\s+)?(?:to|into|by|at|in)\s+"
        r"(?:my|our)\s+(?:own\s+|home\s+)?(?:house|place|home|apartment|flat|kitchen|backyard|garden|studio|bakehouse)\b",
        r"\b(?:you(?:'re| are)|you all are|y'all are|everyone is|the \w+ (?:is|are))\s+(?:\w+\s+)?welcome\s+(?:to|at|in)\s+(?:my|our)\s+(?:house|place|home|apartment|flat|kitchen)\b",
        # a meetup at a time or a place: "come find me at the market around 9 am", "meet me by the fountain"
        r"\b(?:come|stop|swing|drop|pop)\s+(?:by\s+|over\s+)?(?:and\s+)?(?:find|see|meet|visit|say hi to|say hello to|grab)\s+me\b",
        r"\b(?:find|meet|catch|look for)\s+me\b[^.!?]{0,60}?(?:\b(?:at|around|by|about|from)\s+\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.|o'clock)|\bi'll be\b)",
        r"\bi'll be\s+(?:at|by|outside|near|in front of)\s+(?:the\s+)?[^.!?]{0,40}?\b(?:at|around|from)\s+\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.|o'clock)",
        _PROMISE
        + _GAP
        + r"(?:stop|swing|drop|come)\s+(?:by|over to)\s+(?:your)\s+(?:house|place|home|apartment|flat|kitchen|bakery|shop|office)\b",
        r"\bsee you (?:there|at|on|tomorrow|tonight|saturday|sunday|friday)\b",
        # attending the fan's event or being somewhere for them: "I'll be there on the 14th"
        _PROMISE
        + r"\s+(?:\w+\s+)?(?:be there|be at your|make it to your|attend your|come to your|come along|come celebrate|show up (?:at|to|for) your|join you|celebrate with you|drop in on you|pop (?:in|by|over))\b",
        _PROMISE + r"\s+(?:\w+\s+)?come(?=\s*(?:[.!,]|$))",
        r"\b(?:count me in|wouldn't miss it|would not miss it)\b",
        # together at the creator's place or on a collab: "let's film a collab at my place"
        r"(?:\blet's|"
        + _PROMISE
        + r")\s+(?:\w+\s+){0,5}?(?:at|in)\s+(?:my|our)\s+(?:place|house|home|apartment|flat|kitchen|studio|bakery)\b",
        r"(?:\blet's|"
        + _PROMISE
        + r")\s+(?:\w+\s+)?(?:do|film|shoot|record|plan|set up)\s+(?:a|an|our|the)\s+(?:\w+\s+)?collab(?:oration)?\b",
        # an open door or a seat kept: "come by anytime", "my door is always open", "I'll squeeze you in"
        r"\b(?:come|stop|swing|drop|pop)\s+(?:on\s+)?(?:by|over|in|round)\s+(?:any\s*time|whenever|any\s+day|any\s+weekend)\b",
        r"\bmy\s+(?:front\s+|kitchen\s+)?door\s+is\s+(?:always\s+)?open\b",
        r"\b(?:squeeze|fit|sneak|slot)\s+you\s+in\b",
        # a call or mentoring promised to this fan: "I'll go through it with you on a call", "let's do weekly calls"
        _PROMISE
        + r"[^.!?]{0,60}?\b(?:with you|you)\s+(?:on|over|via)\s+(?:a\s+)?(?:quick\s+)?(?:call|phone call|video call|zoom|facetime|"
        r"google meet|skype|video chat)\b",
        _PROMISE
        + r"\s+(?:\w+\s+){0,2}?(?:do|schedule|set up|have|book|start)\s+(?:a\s+|some\s+)?(?:weekly|regular|monthly|daily|"
        r"private|quick)?\s*(?:calls|video calls|zoom calls|facetimes|check-ins|one-on-ones)\b",
        _PROMISE + _GAP + r"(?:mentor|coach|tutor|train)\s+you\b",
        # a private session promised to this fan: "I'll do a one-hour private Zoom lesson for you"
        _PROMISE
        + _GAP
        + r"(?:do|give|teach|run|host|hold|set up|schedule|book|offer)\s+(?:\w+\s+){0,4}?(?:private|personal|"
        r"one-on-one|one on one|1:1|1-on-1|individual)\s+(?:\w+\s+){0,2}?(?:lessons?|sessions?|class(?:es)?|"
        r"calls?|consultations?|coaching|workshops?|tutorials?)\b",
    ),
    Commitment.CONTACT: (
        r"[\w.+-]+@[\w-]+\.[a-z]{2,}",
        r"\bmy\s+(?:personal\s+|private\s+|real\s+|home\s+|direct\s+|cell\s+|mobile\s+)?(?:phone|cell|mobile|number|e-?mail|address|whatsapp|telegram|signal|snapchat|snap|discord|private account)\b(?!\s+one\b)",
        r"\b(?:text|call|dm|message|email|e-mail|reach|add|ping)\s+me\s+(?:at|on|via|privately|directly)\b",
        r"\bdm me\b",
        # vouching for another account as the creator's own: "yes, that's my backup account"
        r"\b(?:that's|that is|it's|it is|this is|yes,?\s+(?:that's|it's))\s+(?:\w+\s+)?(?:my|our)\s+(?:(?:backup|back-up|second|other|alt|alternate|"
        r"new|official|real|private|secondary|giveaway|personal|spare|side|fan|verified|main|business|promo)\s+)+"
        r"(?:(?:team|support|help|giveaways?|promo|promotions?|contest|prize|ig|insta|instagram|tiktok|twitter|facebook|fb|"
        r"youtube|telegram|whatsapp|discord|snapchat|snap)\s+)?(?:account|acct|page|profile|handle|channel)\b",
        r"\b(?:i|we)\s+live\s+(?:at|on)\s+\d",
        # a postal address: a house number, a street name and its kind, or a state and ZIP code
        r"\b\d{1,6}\s+(?:[nsew]\.?\s+)?(?:(?!(?:minutes?|mins?|hours?|hrs?|miles?|km|kilomet(?:er|re)s?|blocks?|steps?|seconds?|"
        r"the|a|an|for|to|of|on|in|at|down|up|my|your|our|this|that|and|or|with|from|by|per|each)\b)[a-z0-9'.-]+\s+){1,3}"
        r"(?:(?:street|avenue|boulevard|road|lane|parkway|highway|terrace|drive)\b|(?:st|ave|blvd|rd|ln|pkwy|hwy)\b\.?(?=\s*(?:[,;]|$|\s+(?:apt|unit|suite|ste|#))|\.\s*$))",
        r"\b(?:p\.?\s?o\.?\s+box|po box|post office box)\s+\d+",
        # where the creator lives by its corner or street: "I'm right on the corner of 4th Ave and 6th St"
        r"\b(?:i|we)\s*(?:'m|'re|\s+am|\s+are|\s+live|\s+lived)\s+(?:right\s+|just\s+)?(?:on|at|off|by|near)\s+(?:the\s+)?(?:corner\s+of\s+)?"
        r"[\w.' ]{1,30}?\b(?:ave|avenue|st|street|rd|road|blvd|boulevard|lane|ln|drive|dr|way|court|ct|place|pl)\b",
        r"\bcorner\s+of\s+[\w.' ]{1,25}?\b(?:and|&)\s+[\w.' ]{1,25}?\b(?:ave|avenue|st|street|rd|road|blvd|boulevard|lane|ln|drive|dr)\b",
        r",\s*(?:az|ca|tx|ny|fl|wa|or|nv|nm|co|ut|il|ma|pa|nj|ga|nc|va|oh|mi|mn|wi|mo|tn|in|md|ky|la|al|sc|ok|ct|ia|ks|ar|ms|ne|id|hi|nh|me|ri|mt|de|sd|nd|ak|vt|wv|dc)\.?\s+\d{5}(?:-\d{4})?\b",
        r"\b(?:mail|send|ship|post|deliver|bring|drop)\s+(?:it|them|that|this|the\s+\w+|your\s+\w+)\s+(?:off\s+)?(?:to|at)\s+\d+\s+[a-z]",
        # the fan told to hand their details to another account: "send them your shipping info"
        r"\b(?:send|give|dm|message|reply to|email|text|forward)\s+(?:them|him|her|that account|the account|the page|it)\s+"
        r"(?:with\s+)?(?:your|all your)\s+(?:\w+\s+)?(?:address|info|information|details|number|card|email|name)\b",
    ),
    Commitment.ADVICE: (
        r"\byou should\s+(?:\w+\s+){0,2}(?:take|stop taking|start taking|increase|reduce|double|skip)\s+(?:\w+\s+){0,3}(?:mg|dose|dosage|meds|medications?|medicine|pills?|antibiotics?|insulin|ibuprofen|supplements?|antidepressants?|tylenol|aspirin)\b",
        r"\b(?:take|try)\s+\d+\s*(?:mg|milligrams|ml|pills?|tablets?|capsules?)\b",
        r"\b(?:stop|quit)\s+taking\s+(?:your\s+)?(?:meds|medications?|medicine|pills|antidepressants?|insulin)\b",
        r"\byou\s+(?:probably|likely|definitely|clearly|must)?\s*have\s+(?:a |an )?(?:infection|diabetes|celiac|depression|adhd|cancer|an allergy|intolerance|disorder|concussion|anxiety disorder)\b",
        r"\b(?:no need to|don't|do not)\s+(?:need to\s+|have to\s+|bother to\s+)?(?:see|go to|call|visit)\s+(?:a|the|your)\s+(?:doctor|dentist|therapist|gp|physician|lawyer|attorney)\b",
        r"\b(?:skip|avoid|forget|ditch|no need for)\s+(?:the|a|your|going to the|going to a|seeing a|seeing the|calling the|calling a)\s+"
        r"(?:doctor|dentist|er|hospital|gp|physician|emergency room|urgent care|lawyer|attorney|pharmacist)\b",
        r"\byou should\s+(?:\w+\s+){0,1}(?:sue|file (?:a )?(?:lawsuit|claim|complaint)|take (?:them|him|her|it) to court|break (?:the|your) (?:lease|contract)|ignore (?:the|that) (?:summons|letter|notice|subpoena)|sign (?:the|that) (?:contract|nda|agreement))\b",
        r"\b(?:legally|by law|under the law),?\s+you\s+(?:can|can't|cannot|should|must|are allowed|don't have to|do not have to)\b",
        r"\byou\s+(?:have|'ve got|got)\s+a\s+(?:strong |good |solid )?(?:legal )?(?:case|claim)\b",
        # told they may sue or will win: "you can definitely sue them", "you'll win in court"
        r"\byou\s*(?:can|could|may|should|'ll be able to|will be able to)\s+(?:\w+\s+)?(?:sue|take (?:them|him|her|it) to (?:court|small claims)|press charges|file (?:a )?(?:lawsuit|claim|suit|dmca))\b",
        r"\byou\s*(?:'ll|will|would|'d)\s+(?:\w+\s+)?win\s+(?:the\s+|that\s+|this\s+|your\s+)?(?:case|lawsuit|suit|in court|court)\b",
        r"\b(?:that's|that is|it's|it is|this is)\s+(?:\w+\s+)?(?:copyright|trademark|patent)\s+infringement\b",
        r"\byou should\s+(?:\w+\s+){0,1}(?:invest|buy|sell|short|put (?:your|all your|\w+) (?:money|savings)|go all in|refinance|cash out)\b",
        r"\b(?:invest|put)\s+(?:all\s+)?(?:your|the)\s+(?:money|savings|paycheck|retirement|401k|pension)\b",
        r"\b(?:buy|sell)\s+(?:some\s+|more\s+)?(?:bitcoin|crypto|stocks?|shares|ethereum|btc|eth|options|index funds)\b",
        r"\bguaranteed\s+(?:returns?|profits?|gains?)\b",
        r"\b(?:great|good|safe|smart|best|solid|wise|sound)\s+investments?\b",
        # legal: no permit, licence or registration needed; permission stated as law
        r"\byou\s+(?:don't|do not|won't|will not|wouldn't)\s+(?:even\s+)?need\s+(?:a\s+|an\s+|any\s+)?"
        r"(?:\w+\s+){0,2}?(?:permits?|licen[cs]es?|registration|certificates?|certification|inspections?|"
        r"insurance|approval|lawyer|attorney|contract|tax id|food handler'?s? card)\b",
        r"\byou\s+(?:can|may|are allowed to)\s+(?:totally\s+|absolutely\s+|perfectly\s+)?legally\b",
        r"\byou\s+(?:can|could|may)\s+(?:just\s+|safely\s+|totally\s+|probably\s+)?(?:skip|ignore|forget about|do without|go without|get away without)\s+"
        r"(?:the\s+|a\s+|an\s+|any\s+|your\s+)?(?:\w+\s+){0,2}?(?:permits?|licen[cs]es?|registration|inspections?|insurance|taxes|"
        r"paperwork|contracts?|lawyer|attorney|doctor|dentist|meds|medications?|prescriptions?|vaccines?)\b",
        r"\b(?:it's|it is|that's|that is|totally|perfectly|completely)\s+(?:\w+\s+)?legal\s+(?:for you\s+)?to\b",
        # medical: food or a practice declared safe for a condition
        r"\b(?:safe|fine|ok|okay|good)\s+for\s+(?:you|someone|people|anyone|most|diabetics|celiacs)\b[^.!?]{0,60}?"
        r"\b(?:celiac|coeliac|diabet\w*|allerg\w*|intoleran\w*|pregnan\w*|ibs|crohn'?s|kidney disease|"
        r"heart disease|blood pressure|medication|meds)\b",
        r"\bif\s+you(?:'re|\s+are|\s+have|'ve got)\s+(?:a\s+|an\s+)?(?:diabetic|diabetes|celiac|coeliac|pregnant|allergic|lactose intolerant|"
        r"gluten intolerant|ibs|crohn'?s|high blood pressure|kidney disease|on (?:blood thinners|meds|medication))\b[^.!?]{0,80}?"
        r"\b(?:won't|will not|can|should|shouldn't|is fine|are fine|is safe|are safe|no problem|don't need|do not need)\b",
        r"\b(?:celiacs?|coeliacs?|diabetics|people with (?:celiac|diabetes|allergies)|pregnant (?:women|people))\s+"
        r"can\s+(?:safely\s+)?(?:eat|have|drink)\b",
    ),
}

_COMPILED: dict[Commitment, re.Pattern[str]] = {
    kind: re.compile("|".join(f"(?:{p})" for p in patterns)) for kind, patterns in _PATTERNS.items()
}
# A negation earlier in the same clause turns a match into a refusal: "I have never run a giveaway",
# "I won't send money". Clause boundaries stop it, so "Don't worry, I'll send you one" still counts.
_NEGATION = re.compile(
    r"\b(?:never|not|no|don't|do not|won't|will not|can't|cannot|didn't|doesn't|isn't|wouldn't)\b"
)
_CLAUSE_END = re.compile(r"[,;:.!?()\n]|\bbut\b")
_DIGITS = re.compile(r"\+?\d[\d\s().\-]{7,}\d")


# Advice in other words: a medical, legal or financial subject, and the fan told what to do about
# it or assured it is fine ("You can eat it even with a wheat allergy", "Put your tax refund into
# bitcoin"), unless the sentence sends them to a professional instead.
_ADVICE_SUBJECT = re.compile(
    r"\b(?:celiacs?|coeliacs?|gluten[- ]intoleran\w*|allerg\w*|intoleran\w*|insulin|diabet\w*|blood sugar|"
    r"doses?|dosage|meds|medications?|medicines?|prescriptions?|doctors?|ibs|crohn'?s|pregnan\w*|"
    r"symptoms?|infections?|illness|antibiotics?|probiotics?|cures?|heals?|fix(?:es)? (?:your |the )?(?:gut|ibs|bloating)|"
    r"licen[cs]es?|permits?|health department|health inspect\w*|inspections?|tax(?:es)?|write-?offs?|deduct\w*|"
    r"irs|llc|liability|insurance|lawsuits?|sue|court|copyright\w*|trademark\w*|infring\w*|contracts?|legal(?:ly)?|illegal|cottage food|zoning|"
    r"invest\w*|bitcoin|crypto\w*|stocks?|shares|savings|retirement|401k|loans?|debt|mortgage|tax refund|"
    r"borrow\w*|credit cards?|emergency fund|rainy day fund|savings account|college fund|rent money|line of credit|pensions?|roth|ira|etfs?|index funds?|brokerage|heloc|remortgage|"
    r"pays? for itself|paid for itself|franchis\w*|sole prop\w*|self-employ\w*|"
    r"raw (?:dough|flour|eggs?|batter|milk|cookie dough)|food poisoning|salmonella|e\.? ?coli|listeria|botulism|"
    r"toddlers?|infants?|newborns?|credit me|as your own|under your (?:own )?name|my permission|"
    r"quit your job|your day job)\b"
)
_ADVICE_FORM = re.compile(
    r"\byou\s*(?:can|could|should|must|may)\s+(?:\w+\s+){0,2}?(?:eat|have|drink|take|skip|ignore|sell|keep|give|"
    r"feed|stop|quit|claim|deduct|write|invest|put|buy|double|halve|increase|reduce|go|do|get away|use|treat|cure)\b"
    r"|\byou\s*(?:'ll be|will be|'re|are)\s+(?:\w+\s+)?(?:fine|safe|ok|okay|good|covered|allowed)\b"
    r"|\byou\s*(?:'ll|will)\s+(?:\w+\s+)?win\b"
    r"|\byou\s*(?:'ll|will)\s+(?:\w+\s+)?(?:save|pay less|owe nothing|owe less|get a refund|qualify)\b"
    r"|\b(?:won't|will not|shouldn't|should not|doesn't|does not|can't|cannot)\s+(?:\w+\s+)?(?:trigger|affect|bother|hurt|harm|"
    r"upset|flare|worsen|aggravate|interact|make you sick)\b"
    r"|\bgo ahead and\s+(?:eat|enjoy|try|have|take|skip|stop|use|sell|file|claim|invest|buy)\b"
    r"|\byou\s+(?:don't|do not|won't|will not|never)\s+(?:really\s+|even\s+)?(?:need|have)\b"
    r"|\bno need\b|\bneedn't\b"
    r"|\b(?:is|it's|that's|are|totally|perfectly|completely)\s+(?:\w+\s+)?(?:safe|fine|harmless|okay|ok|legal)\b"
    r"|^(?:(?:honestly|just|so|and|then|yes|yeah|sure|definitely|absolutely|totally|go ahead and)[,!\s]+)*(?:put|skip|stop|take|double|halve|quit|claim|invest|buy|sell|ignore|"
    r"drop|cut|swap|try|go all in|cash out|cash in|withdraw|borrow|liquidate|dip into|raid|empty|max out|refinance|roll over|pay off|"
    r"take out|file|register|incorporate)\b"
)
_REFERRAL = re.compile(
    r"\b(?:ask|check with|talk to|see|consult|call|speak to|speak with)\s+(?:a|an|your|the)\s+"
    r"(?:\w+\s+)?(?:doctor|gp|physician|pharmacist|dietitian|lawyer|attorney|accountant|advisor|adviser|"
    r"professional|specialist|health department|county|city)\b"
    r"|\bi'?m not (?:a|an) (?:doctor|lawyer|accountant|financial advisor|dietitian|nutritionist)\b"
)


# A medication by kind or by the endings drug names share (metformin, lisinopril, atorvastatin,
# omeprazole, sertraline, levothyroxine...): any advice to start, stop, swap or change one is
# medical advice, whatever the drug.
_MEDICATION = (
    r"(?:meds|medications?|medicines?|pills?|prescriptions?|insulin|inhalers?|antidepressants?|antibiotics?|"
    r"birth control|statins?|blood thinners?|steroids?|epi-?pens?|thyroid (?:meds|pills)|"
    r"[a-z]{3,}(?:formin|pril|sartan|olol|statin|prazole|azole|cillin|mycin|cycline|tidine|dipine|zepam|zolam|"
    r"oxetine|traline|triptan|thyroxine|glutide|gliptin|gliflozin|lukast|profen|codone|xaban|parin|farin|"
    r"sone|olone|mab|vir))"
)
_MEDICATION_CHANGE = re.compile(
    r"\b(?:stop|quit|skip|drop|ditch|swap|switch|replace|cut out|cut back on|cut down on|ease off|wean off|wean yourself off|"
    r"come off|go off|get off|halve|double|lower|"
    r"reduce|increase|taper|pause|start|begin|give up)\s+(?:taking\s+|using\s+|on\s+)?(?:the\s+|your\s+|all\s+|"
    r"some\s+|those\s+|that\s+)?(?:\w+\s+)?" + _MEDICATION + r"\b"
    r"|\b(?:instead of|rather than|in place of|replace)\s+(?:taking\s+)?(?:the\s+|your\s+)?(?:\w+\s+)?"
    + _MEDICATION
    + r"\b"
    r"|\b(?:you\s+)?(?:don't|do not|won't|will not|no longer)\s+need\s+(?:the\s+|your\s+|any\s+)?(?:\w+\s+)?"
    + _MEDICATION
    + r"\b"
    r"|\b" + _MEDICATION + r"\s+(?:isn't|is not|aren't|are not)\s+(?:really\s+)?(?:needed|necessary)\b"
)
# A condition named as the fan's ("that sounds like IBS", "you probably have a gluten intolerance"):
# diagnosing a fan is medical advice, and so is the treatment that usually follows it.
_CONDITION = (
    r"(?:ibs|sibo|gerd|reflux|celiac|coeliac|crohn'?s|colitis|candida|leaky gut|diabetes|prediabetes|anemia|"
    r"anaemia|hypothyroidism|hyperthyroidism|(?:a |an )?(?:gluten |lactose |wheat |fructose |histamine |fodmap )?"
    r"(?:intolerance|sensitivity|allergy)|(?:an? )?(?:\w+ )?(?:infection|deficiency|disorder|syndrome|disease)|"
    r"(?:food\s+|mild\s+|a\s+)?poisoning|(?:a |the )?(?:stomach )?(?:flu|bug|virus)|migraines?|"
    r"[a-z]{3,}(?:itis|osis|emia|algia))"
)
_DIAGNOSIS = re.compile(
    r"\b(?:(?:that|this|it)\s+(?:sounds|seems|looks)|(?:sounds|seems|looks))\s+(?:a lot\s+|exactly\s+)?like\s+"
    r"(?:you(?:'ve got|\s+have|\s+might have)\s+)?(?:a |an )?" + _CONDITION + r"\b"
    r"|\b(?:that's|that is|it's|it is)\s+(?:probably|likely|definitely|almost certainly|most likely)\s+(?:a |an )?"
    + _CONDITION
    + r"\b"
    r"|\byou\s+(?:probably|likely|might|may|definitely)\s+have\s+(?:a |an )?" + _CONDITION + r"\b"
)
# What to take for it: a supplement, a remedy or a dose told to the fan.
_TREATMENT = re.compile(
    r"(?:^|[,;:]\s*|\b(?:so|and|then|just)\s+|\byou\s+(?:should|could|can|need to|must)\s+)"
    r"(?:take|try|start|use|get)\s+(?:\w+\s+){0,3}?(?:probiotics?|prebiotics?|supplements?|capsules?|tablets?|"
    r"pills?|lactase|vitamins?|peppermint oil|oil capsules|"
    r"antacids?|antihistamines?|ibuprofen|tylenol|aspirin|" + _MEDICATION + r")\b"
)


def _advice(text: str) -> re.Match[str] | None:
    if _REFERRAL.search(text) is not None:
        return None
    for rule in (_MEDICATION_CHANGE, _DIAGNOSIS, _TREATMENT):
        match = next((m for m in rule.finditer(text) if not _negated(text, m)), None)
        if match is not None:
            return match
    subject = _ADVICE_SUBJECT.search(text)
    if subject is None:
        return None
    return subject if _ADVICE_FORM.search(text.strip()) is not None else None


def find_commitments(text: str, kinds: Iterable[Commitment]) -> list[tuple[Commitment, str]]:
    """The forbidden kinds ``text`` commits to, each with the words that gave it away.

    Args:
        text: A reply sentence, already normalised (NFKC, case-folded, invisibles removed).
        kinds: The kinds the creator forbids.

    Returns:
        ``(kind, matched text)`` pairs in the order of ``kinds``.
    """
    found = []
    for kind in kinds:
        match = next((m for m in _COMPILED[kind].finditer(text) if not _negated(text, m)), None)
        if match is None and kind is Commitment.CONTACT:
            match = _phone(text)
        if match is None and kind is Commitment.ADVICE:
            match = _advice(text)
        if match is not None:
            found.append((kind, match.group(0)))
    return found


def _negated(text: str, match: re.Match[str]) -> bool:
    # Only the words *before* the match count: a pattern may itself contain a negation ("you don't
    # need to see a doctor" is advice, not a refusal).
    before = text[: match.start()]
    ends = list(_CLAUSE_END.finditer(before))
    clause = before[ends[-1].end() :] if ends else before
    return _NEGATION.search(clause) is not None


def _phone(text: str) -> re.Match[str] | None:
    # Nine or more digits in one run of digits, spaces and separators reads as a phone number;
    # shorter runs are quantities, years and temperatures.
    for match in _DIGITS.finditer(text):
        if sum(ch.isdigit() for ch in match.group(0)) >= 9:
            return match
    return None
