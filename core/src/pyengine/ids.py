"""Identifiers and names as Docker makes them: 64-hex IDs, generated names, name validation."""

from __future__ import annotations

import os
import random
import re

from pyengine.errors import InvalidArgument

_NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")

_ADJECTIVES = (
    "admiring adoring affectionate amazing awesome blissful bold brave busy charming clever compassionate "
    "competent confident cool cranky crazy dazzling determined distracted dreamy eager ecstatic elastic "
    "elated elegant eloquent epic exciting fervent festive flamboyant focused friendly frosty funny gallant "
    "gifted goofy gracious great happy hardcore heuristic hopeful hungry infallible inspiring intelligent "
    "interesting jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty "
    "nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky "
    "quizzical recursing relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied "
    "suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful "
    "xenodochial youthful zealous zen"
).split()
_SCIENTISTS = (
    "agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin babbage banach "
    "bardeen bartik bassi beaver bell benz bhabha bhaskara black blackburn blackwell bohr booth borg bose "
    "boyd brahmagupta brattain brown buck burnell cannon carson cartwright carver cerf chandrasekhar "
    "chaplygin chatelet chatterjee chebyshev cohen colden cori cray curie darwin davinci dewdney dhawan "
    "diffie dijkstra dirac driscoll dubinsky easley edison einstein elbakyan elgamal elion ellis engelbart "
    "euclid euler faraday feistel fermat fermi feynman franklin gagarin galileo galois ganguly gates gauss "
    "germain goldberg goldstine goldwasser golick goodall gould greider grothendieck haibt hamilton hawking "
    "heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia "
    "jackson jang jemison jennings jepsen johnson joliot jones kalam kapitsa kare keldysh keller kepler "
    "khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lederberg lehmann lewin "
    "lichterman liskov lovelace lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock "
    "mclean mcnulty meitner mendel mendeleev merkle mestorf mirzakhani montalcini moore morse moser "
    "napier nash neumann newton nightingale nobel noether northcutt noyce panini pare pascal pasteur "
    "payne perlman pike poincare poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson "
    "roentgen rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern "
    "sinoussi snyder solomon spence stonebraker sutherland swanson swartz swirles taussig tesla tharp "
    "thompson torvalds tu turing varahamihira vaughan villani visvesvaraya volhard wescoff wilbur wiles "
    "williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def new_id() -> str:
    """A new random 64-hex object ID, as Docker's containers, networks and exec sessions have."""
    return os.urandom(32).hex()


def short_id(full_id: str) -> str:
    """The 12-character form Docker prints."""
    return full_id.removeprefix("sha256:")[:12]


def is_full_id(text: str) -> bool:
    return bool(_HEX64_RE.match(text))


def random_name(retry: int = 0) -> str:
    """A name like Docker's ``elegant_turing``; a digit is appended on retries after a clash."""
    name = f"{random.choice(_ADJECTIVES)}_{random.choice(_SCIENTISTS)}"
    return f"{name}{random.randint(0, 9)}" if retry else name


def validate_container_name(name: str) -> str:
    """Return the name without a leading '/', or raise Docker's 400 for an invalid one."""
    if not _NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")
