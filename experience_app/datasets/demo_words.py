"""Word lists for the generated demo world. All invented here; no external data.

``TAXONOMY`` is the category tree: top-level name → (popularity, nouns for newsletter
names, {subcategory name: topic phrases}). Topic phrases fill titles, summaries and
bodies, so an item reads like it belongs to its subcategory.
"""

from __future__ import annotations

_RAW_TAXONOMY = {  # name: (popularity, "name nouns", {subcategory: "topic; phrases"})
    "Technology": (
        1.6,
        "Byte; Stack; Kernel; Circuit; Signal; Protocol; Terminal; Compiler",
        {
            "AI": (
                "large language models; AI agents; model evaluation; open-weight models; "
                "GPU clusters; fine-tuning; AI safety; retrieval pipelines"
            ),
            "Programming": (
                "Rust; Python packaging; type systems; code review; database indexes; "
                "WebAssembly; testing strategies; legacy code"
            ),
            "Gadgets": (
                "foldable phones; e-readers; mechanical keyboards; smart watches; "
                "noise-cancelling headphones; home routers"
            ),
            "Cybersecurity": (
                "ransomware; passkeys; supply-chain attacks; zero-day exploits; phishing kits; "
                "bug bounties"
            ),
            "Open Source": (
                "maintainer burnout; software licensing; package registries; funding models; "
                "project governance; community forks"
            ),
        },
    ),
    "Business": (
        1.3,
        "Ledger; Margin; Boardroom; Pitch; Balance; Runway; Quarter; Market",
        {
            "Startups": (
                "seed rounds; product-market fit; founder equity; pricing pages; remote hiring; "
                "bootstrapping"
            ),
            "Finance": (
                "interest rates; bond yields; earnings season; central banks; index funds; "
                "venture debt"
            ),
            "Marketing": (
                "email funnels; brand voice; search rankings; community building; "
                "creator partnerships; customer retention"
            ),
            "Leadership": (
                "one-on-ones; performance reviews; hiring loops; team rituals; strategy memos; "
                "managing up"
            ),
            "Economy": (
                "inflation; labour markets; supply chains; housing costs; trade policy; "
                "productivity"
            ),
        },
    ),
    "Science": (
        1.0,
        "Orbit; Lab; Quark; Specimen; Hypothesis; Telescope; Helix; Field",
        {
            "Space": (
                "exoplanets; reusable rockets; lunar landers; space telescopes; "
                "Mars sample return; satellite constellations"
            ),
            "Climate": (
                "heat pumps; carbon removal; grid storage; sea-level rise; wildfire seasons; "
                "climate models"
            ),
            "Biology": (
                "gene editing; the microbiome; protein folding; ancient DNA; coral reefs; "
                "bird migration"
            ),
            "Physics": (
                "quantum computing; dark matter; fusion reactors; particle colliders; "
                "superconductors; gravitational waves"
            ),
        },
    ),
    "Culture": (
        1.1,
        "Margins; Chapter; Reel; Canvas; Encore; Gallery; Footnote; Stage",
        {
            "Books": (
                "debut novels; literary translation; independent bookshops; "
                "short story collections; reading habits; book prizes"
            ),
            "Film": (
                "festival premieres; streaming releases; documentaries; film restoration; "
                "screenwriting; box-office numbers"
            ),
            "Music": (
                "vinyl reissues; touring economics; jazz records; songwriting; indie labels; "
                "music streaming"
            ),
            "Art": (
                "museum exhibitions; street art; art fairs; documentary photography; "
                "printmaking; art restoration"
            ),
            "Games": (
                "indie games; game preservation; board games; speedrunning; game design; esports"
            ),
        },
    ),
    "Health": (
        1.0,
        "Pulse; Vital; Remedy; Balance; Stride; Clinic; Rest; Habit",
        {
            "Fitness": (
                "strength training; zone 2 cardio; mobility routines; marathon training; "
                "recovery days; home workouts"
            ),
            "Nutrition": (
                "protein intake; fermented foods; meal planning; ultra-processed food; "
                "dietary fibre; hydration"
            ),
            "Mental Health": (
                "burnout; talk therapy; mindfulness; loneliness; sleep hygiene; digital detox"
            ),
            "Medicine": (
                "clinical trials; vaccines; antibiotic resistance; GLP-1 drugs; primary care; "
                "medical imaging"
            ),
        },
    ),
    "Politics": (
        0.9,
        "Ballot; Senate; Chamber; Dispatch; Brief; Forum; Agenda; Cable",
        {
            "Elections": (
                "polling; swing districts; voter turnout; campaign finance; televised debates; "
                "ballot measures"
            ),
            "Policy": (
                "housing policy; tax reform; education funding; immigration rules; "
                "healthcare reform; zoning"
            ),
            "World Affairs": (
                "diplomacy; trade agreements; sanctions; peace talks; the United Nations; "
                "regional alliances"
            ),
        },
    ),
    "Sports": (
        0.9,
        "Sideline; Playbook; Finish Line; Pitch; Locker Room; Scoreboard; Lap",
        {
            "Football": (
                "the transfer window; pressing tactics; youth academies; the Champions League; "
                "set pieces; goalkeeping"
            ),
            "Basketball": (
                "three-point shooting; the draft; the trade deadline; player development; "
                "playoff races; basketball analytics"
            ),
            "Running": (
                "marathons; trail running; running shoes; interval sessions; ultra races; "
                "injury prevention"
            ),
            "Cycling": (
                "the Tour de France; gravel bikes; bike commuting; e-bikes; mountain climbs; "
                "bike fitting"
            ),
        },
    ),
    "Food & Drink": (
        0.8,
        "Pantry; Kitchen; Table; Skillet; Crumb; Larder; Cellar; Spoon",
        {
            "Recipes": (
                "weeknight dinners; sourdough; one-pot meals; home baking; vegetarian cooking; "
                "meal prep"
            ),
            "Restaurants": (
                "tasting menus; neighbourhood bistros; restaurant openings; chef interviews; "
                "street food; hard-to-get reservations"
            ),
            "Coffee": (
                "single-origin beans; espresso; home roasting; pour-over; café culture; "
                "burr grinders"
            ),
            "Wine & Spirits": (
                "natural wine; single malt whisky; cocktail bars; low-alcohol drinks; "
                "small vineyards; sake"
            ),
        },
    ),
    "Travel": (
        0.7,
        "Compass; Passport; Trail; Atlas; Postcard; Layover; Horizon; Map",
        {
            "Destinations": "Lisbon; Kyoto; Patagonia; the Dolomites; Mexico City; Iceland",
            "Outdoors": (
                "long-distance hiking; camping gear; national parks; sea kayaking; "
                "mountain huts; wild swimming"
            ),
            "City Guides": (
                "weekend itineraries; public transport; neighbourhood walks; food markets; "
                "small museums; late-night food"
            ),
            "Rail Travel": (
                "night trains; rail passes; scenic routes; high-speed lines; "
                "station architecture; sleeper cabins"
            ),
        },
    ),
    "Design": (
        0.7,
        "Grid; Pixel; Blueprint; Kerning; Sketch; Palette; Form; Line",
        {
            "UX": (
                "onboarding flows; accessibility; design systems; usability testing; "
                "dark patterns; microcopy"
            ),
            "Architecture": (
                "timber buildings; adaptive reuse; public housing; urban plazas; brutalism; "
                "passive houses"
            ),
            "Typography": (
                "variable fonts; type foundries; readability; grid systems; hand lettering; "
                "font licensing"
            ),
        },
    ),
}


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(";"))


TAXONOMY: dict[str, tuple[float, tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    top: (popularity, _phrases(nouns), {sub: _phrases(t) for sub, t in subs.items()})
    for top, (popularity, nouns, subs) in _RAW_TAXONOMY.items()
}

ADJECTIVES = (
    "Curious",
    "Quiet",
    "Morning",
    "Deep",
    "Open",
    "Plain",
    "Modern",
    "Little",
    "Patient",
    "Practical",
    "Honest",
    "Long",
    "Slow",
    "Bright",
    "Careful",
    "Independent",
)
NAME_SUFFIXES = ("Letter", "Dispatch", "Notes", "Digest", "Brief", "Review", "Report", "Memo")
FREQUENCIES = (  # label, word a name may carry, weight among providers, issues per week
    ("daily", "Daily", 0.12, 5.0),
    ("twice-weekly", "", 0.2, 2.0),
    ("weekly", "Weekly", 0.5, 1.0),
    ("fortnightly", "", 0.1, 0.5),
    ("monthly", "Monthly", 0.08, 0.25),
)
FIRST_NAMES = (
    "Ada",
    "Bruno",
    "Chiara",
    "Dev",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonah",
    "Keiko",
    "Lars",
    "Maya",
    "Nico",
    "Olu",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tomas",
    "Uma",
    "Viktor",
    "Wen",
    "Yara",
    "Zoe",
)
LAST_NAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Haddad",
    "Kowalski",
    "Fernandes",
    "Brennan",
    "Novak",
    "Achterberg",
    "Sato",
    "Mensah",
    "Rossi",
    "Iyer",
    "Castillo",
    "Whitfield",
    "Dubois",
    "Park",
    "Ibrahim",
    "Sørensen",
)
ROLES = (
    "a former engineer",
    "a long-time editor",
    "a reporter turned analyst",
    "a researcher",
    "a practitioner with twenty years in the field",
    "a teacher",
    "an independent writer",
    "a former consultant",
)
PITCHES = (
    "No hype, just the most useful links and one idea worth your time.",
    "Short enough to read with your coffee.",
    "Every issue ends with a question from a reader.",
    "Careful reporting, plain language, no paywall.",
    "One long essay a week, written slowly.",
    "Curated links with honest commentary.",
    "The story behind the headlines, explained.",
)
ORGS = (
    "Northwind Labs",
    "Halcyon Systems",
    "Brightwater",
    "Veridian Group",
    "Solace Health",
    "Kestrel & Co",
    "Lumen Institute",
    "Ardent Works",
    "Bluefin Capital",
    "Cobalt Studio",
    "Meridian Council",
    "Juniper Foundation",
)
CITIES = (
    "Lisbon",
    "Toronto",
    "Melbourne",
    "Nairobi",
    "Osaka",
    "Glasgow",
    "Austin",
    "Utrecht",
    "Montreal",
    "Bangalore",
    "Valparaíso",
    "Tallinn",
)
AUDIENCES = (
    "busy readers",
    "beginners",
    "practitioners",
    "small teams",
    "newcomers",
    "long-time readers",
    "students",
    "anyone short on time",
)
COUNTRIES = ("US", "GB", "CA", "AU", "IE", "DE", "NL", "IN", "NZ", "FR")
COUNTRY_WEIGHTS = (0.35, 0.15, 0.1, 0.08, 0.05, 0.07, 0.05, 0.08, 0.03, 0.04)

TITLES = (
    "{n} things I learned about {topic} this month",
    "Why {topic} matters more than you think",
    "The quiet rise of {topic}",
    "What everyone gets wrong about {topic}",
    "A practical guide to {topic}",
    "Inside {org}'s bet on {topic}",
    "{Topic}, explained in five charts",
    "Is {topic} overrated?",
    "The week in {sub}: {topic}, {topic2} and more",
    "How {org} rethought {topic}",
    "{Topic} after the hype",
    "Notes on {topic}",
    "What {topic} can teach us about {topic2}",
    "An interview with {person} on {topic}",
    "The case for {topic}",
    "The case against {topic}",
    "Reader questions: {topic}",
    "{n} lessons from a year of {topic}",
    "Where {topic} goes next",
    "The hidden costs of {topic}",
    "Field notes: {topic} in practice",
    "Everything new in {topic} this week",
    "Why I changed my mind on {topic}",
    "A short history of {topic}",
    "{Topic} is changing. Here is how",
    "Beginner mistakes in {topic}, and how to avoid them",
    "{Topic} vs {topic2}: an honest comparison",
    "From {city}: what {topic} looks like on the ground",
)
SUMMARIES = (
    "This week we look at {topic} and why {org} thinks it will reshape {topic2}.",
    "{person} explains what {topic} means for {audience}.",
    "A close look at {topic}, with notes on {topic2} and a few links worth your time.",
    "The numbers behind {topic}, and what they leave out.",
    "Three ideas about {topic} that changed how I work.",
    "Why {topic} keeps coming up, and what to do about it.",
    "A reader from {city} asked about {topic}. Here is a long answer.",
    "What happened with {topic} this week, in under ten minutes.",
)
SENTENCES = (
    "{Topic} has moved from the margins to the centre of the conversation.",
    "When we spoke to {person}, the first thing they mentioned was {topic}.",
    "The numbers tell a mixed story: {topic} is growing, but {topic2} is growing faster.",
    "Most readers asked the same question: is {topic} worth the effort?",
    "{org} published new figures this week, and they are worth a closer look.",
    "The short answer is yes, but the details matter.",
    "Here is what changed, and what did not.",
    "Critics point out that {topic} still has a cost problem.",
    "I spent the past month trying {topic} in everyday use.",
    "If you only read one part of this issue, make it the section on {topic2}.",
    "There are three reasons for this, and none of them is obvious.",
    "The first is timing, the second is money, and the third is people.",
    "None of this happens in a vacuum.",
    "For {audience}, the practical takeaway is simple: start small.",
    "A reader from {city} wrote in with a sharp question about {topic}.",
    "We will come back to {topic} in a future issue.",
    "It is easy to forget how new {topic} really is.",
    "The debate around {topic} often misses the point.",
    "{person}, who has worked on {topic} for over a decade, is cautiously optimistic.",
    "That is a bigger shift than it sounds.",
    "Some of the best work on {topic} is happening in small teams.",
    "The trade-offs are real, and they deserve an honest look.",
    "Still, the trend line is hard to ignore.",
    "What follows is a summary of what we learned.",
    "Expect {topic} to stay in the headlines for a while.",
    "The evidence so far is encouraging but thin.",
    "This is where {topic2} enters the picture.",
    "Ask ten experts about {topic} and you will get eleven opinions.",
    "One detail stood out: the role of {topic2}.",
    "In {city}, the picture looks rather different.",
    "A team at {org} tried a different approach, and the early results are promising.",
    "The hard part is not the technology but the habits around it.",
    "We asked {person} what they would tell someone new to {topic}.",
    "Their answer was short: read widely, and be patient.",
    "Costs have fallen, but not evenly.",
    "Nobody I spoke to expects this to be settled soon.",
    "It helps to separate what is new from what is merely loud.",
    "The same pattern showed up with {topic2} a few years ago.",
    "If that sounds familiar, it is because we have been here before.",
    "Thanks for reading, and as always, reply with your thoughts.",
)
