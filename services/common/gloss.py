"""A word-by-word English gloss of sentences in the other languages fans write in.

A reply in Spanish to a creator who posts in English shares none of its words with the evidence,
and the sentence embedder reads English only, so neither retrieval nor grounding can meet the
posts. Translating word by word with a small glossary of everyday, kitchen and calendar words is
enough for both: the gloss "i feed her two times per day" finds the post about feeding the starter
twice a day and can be judged against it the way an English claim is. Words the glossary lacks
are kept as they are: names ("Doughlores") and loanwords ("focaccia") still meet the evidence, and
an unknown content word counts as unsupported, so an invented fact does not pass by being in
another language.

The glossary is general, not one creator's: numbers, days and months, time and measures, the
verbs of making, selling and posting, and common foods. Spanish, French, German, Portuguese and
Italian.
"""

from __future__ import annotations

import re

# English word: its forms in es/fr/de/pt/it (inflected forms listed, as there is no stemmer for
# these languages). A form shared by two entries keeps the first (the commoner sense).
_ENTRIES = """
two: dos deux zwei dois duas due
three: tres trois drei três tre
four: cuatro quatre vier quatro quattro
five: cinco cinq fünf cinque
six: seis six sechs
seven: siete sept sieben sete sette
eight: ocho huit acht oito otto
nine: nueve neuf neun nove
ten: diez dix zehn dez dieci
twelve: doce douze zwölf doze dodici
twenty: veinte vingt zwanzig vinte venti
thirty: treinta trente dreißig trinta
half: medio media mitad moitié demi demie halb halbe hälfte meio metade mezzo mezza metà
times: veces fois mal vezes volte
first: primer primero primera premier première ersten erste erster primeiro primeira primo prima
every: cada chaque jeden jede jeder ogni todos todas tous toutes alle tutti tutte
sunday: domingo dimanche sonntag domenica
monday: lunes lundi montag segunda lunedì
tuesday: martes mardi dienstag terça martedì
wednesday: miércoles mercredi mittwoch quarta mercoledì
thursday: jueves jeudi donnerstag quinta giovedì
friday: viernes vendredi freitag sexta venerdì
saturday: sábado sabado samedi samstag sabato
january: enero janvier januar janeiro gennaio
february: febrero février februar fevereiro febbraio
march: marzo mars märz março
april: abril avril aprile
may: mayo mai maio maggio
june: junio juin juni junho giugno
july: julio juillet juli julho luglio
august: agosto août
september: septiembre septembre setembro settembre
october: octubre octobre oktober outubro ottobre
november: noviembre novembre novembro
december: diciembre décembre dezember dezembro dicembre
day: día dia días dias jour jours tag tage tages giorno giorni journée
week: semana semanas semaine semaines woche wochen settimana settimane
month: mes meses mois monat monate monats mês mese mesi
year: año años an ans année années jahr jahre jahren ano anos anno anni
hour: hora horas heure heures stunde stunden ora ore uhr
minute: minuto minutos minute minutes minuten minuti
morning: mañana matin morgen morgens manhã mattina mattino
night: noche noches nuit nuits nacht nächte nachts noite noites notte
evening: tarde soir soirée abend abends sera
weekend: finde wochenende
time: tiempo temps zeit tempo horario horário orario
degrees: grados degrés grad graus gradi
percent: prozent
grams: gramos grammes gramm gramas grammi
bread: pan panes pain pains brot brote brots pão pães pane pani
flour: harina farine mehl farinha farina
water: agua eau wasser água acqua
salt: sal sel salz sale
sugar: azúcar sucre zucker açúcar zucchero
butter: mantequilla beurre manteca manteiga burro
oil: aceite huile öl azeite olio
olive: oliva olive olivenöl
yeast: levadura levure hefe fermento lievito
starter: levain sauerteig anstellgut
dough: masa pâte teig massa impasto
loaf: hogaza miche laib pagnotta filão
crust: corteza croûte kruste crosta
crumb: miga mie krume crumb mollica miolo
rye: centeno seigle roggen centeio segale
wheat: trigo blé weizen grano frumento
whole: integral complète complet vollkorn integrale integrali
fine: fina fino fine fein feines feinem
flakes: escamas copos flocons flocken flocos fiocchi
sea: mar mer meer mare marino marina marinho marinha marin marine
new: nuevo nueva nuevos nuevas nouveau nouvelle nouveaux neu neue neuen neues novo nova novos novas
  nuovo nuova nuovi nuove
directly: directamente directement direkt diretamente direttamente
oven: horno four ofen forno
lid: tapa couvercle deckel tampa coperchio
pot: olla cocotte topf panela pentola
fridge: nevera refrigerador frigo frigorífico réfrigérateur kühlschrank geladeira frigorifero
bowl: bol tazón saladier schüssel tigela ciotola
hand: mano main hand mão
temperature: temperatura température temperatur
hydration: hidratación hydratation hydration hidratação idratazione
recipe: receta recette rezept receita ricetta
video: vídeo vidéo videos vídeos vidéos
live: directo directa live diretta
question: pregunta preguntas question questions frage fragen pergunta perguntas domanda domande
answer: respuesta respuestas réponse réponses antwort antworten resposta respostas risposta risposte
shop: tienda boutique laden shop loja negozio
price: precio prix preis preço prezzo
dollars: dólares dollars dollar dollari
free: gratis gratuit gratuite gratuitement kostenlos grátis gratuito gratuita gratuitamente
newsletter: boletín newsletter
class: clase clases cours kurs kurse aula aulas lezione lezioni
private: particular particulares privada privado privé privée privat privato
market: mercado marché markt mercato
partner: pareja compañero partenaire compagnon partner partnerin companheiro compagno
children: hijos hijas niños niñas enfants kinder filhos filhas crianças figli figlie bambini
son: hijo fils sohn söhne filho figlio
daughter: hija fille tochter töchter filha figlia
husband: marido esposo mari ehemann marito
wife: esposa épouse femme ehefrau moglie mulher
married: casada casado casados mariée marié mariés verheiratet sposata sposato sposati
pregnant: embarazada enceinte schwanger grávida incinta
baby: bebé bebe bébé baby bambino neném
cat: gato gata chat chatte katze kater gatto gatta
dog: perro chien hund cachorro cane
house: casa maison haus
kitchen: cocina cuisine küche cozinha cucina
use: uso usa usas usar utilizo utiliza utilise utilises utiliser nutze nutzt benutze verwende verwendet
  utilizzo
feed: alimento alimenta alimentar nourris nourrit nourrir füttere füttern nutro
eat: como comer comen comemos mange manger mangent esse isst essen comem mangio mangiare
give: doy dar donne donner gebe gibt geben dou dare
bake: horneo hornea hornear cuece cuit cuire backe backen asso inforno cozinho
make: hago hace hacer fais fait faire mache macht machen faço faz fazer faccio fa fare
mix: mezclo mezcla mezclar mélange mélanger mistura mix mischung miscela mische mischen misturo misturar
  mescolo mescolare impasto
shape: formo forma formar façonne façonner forme formen modelo modelar
leave: dejo deja dejar laisse laisser lasse lassen deixo deixar lascio lasciare
rest: reposar repose reposer ruhen descansar riposare riposo
put: pongo pone poner mets mettre lege legen stelle coloco ponho metto mettere
add: añado añade añadir agrego ajoute ajouter gebe füge adiciono aggiungo
wait: espero esperar attends attendre warte warten aspetto aspettare
cover: cubro tapo couvre couvrir decke coperto
remove: quito quitar retire retirer enlève nehme tiro tolgo
post: publico publica publicar subo sube subir publie publier poste lade posto pubblico carico
buy: compro compra comprar achète acheter kaufe kaufen
bought: compré compró comprado comprada acheté achetée gekauft comprei comprou comprato comprata
sell: vendo vende vender vends vendre verkaufe verkaufen
start: empecé empiezo empezar comencé começo comecei commencé commence début anfangen angefangen
  begonnen inizio iniziato
love: encanta encantan amo adoro adore j'adore liebe
prefer: prefiero prefiere préfère bevorzuge prefiro preferisco
grow: crece crecer pousse lève geht wächst cresce lievita
double: duplica dobla double doppelt verdoppelt dobra raddoppia
rise: subida levée gare crescita
fold: pliegue pliegues rabat rabats dehnen faltung dobra pieghe
ship: envío enviar envoie envoyer expédier versende envio spedisco spedire
inside: dentro dedans drinnen innen
top: encima arriba dessus oben cima sopra
hot: caliente calor chaud chaude heiß heiße quente caldo calda
cold: frío fría froid froide kalt kalte frio fria freddo fredda
long: largo larga long longue lang lange longo longa lungo lunga
next: próximo próxima prochain prochaine nächste nächsten prossimo prossima
always: siempre toujours immer sempre
about: unos unas alrededor environ ungefähr etwa cerca circa
more: más plus mehr mais più
less: menos moins weniger meno
with: con avec mit com
without: sin sans ohne sem senza
and: y et und e ed
"""


def _build(entries: str) -> dict[str, str]:
    table: dict[str, str] = {}
    english = ""
    for line in entries.strip().splitlines():
        if line.startswith("  "):  # a continuation of the entry above
            forms = line.split()
        else:
            english, _, rest = line.partition(":")
            forms = rest.split()
        for form in forms:
            table.setdefault(form.casefold(), english)
    return table


GLOSSARY = _build(_ENTRIES)
"""Word form (case-folded) in another language -> its English gloss."""

# "Two times" and "one time" are how these languages say twice and once, as the evidence does.
_TWICE = re.compile(r"\b(?:deux\s+fois|zweimal|zwei\s+mal|dos\s+veces|duas\s+vezes|due\s+volte)\b")
_ONCE = re.compile(r"\b(?:une\s+fois|einmal|una\s+vez|uma\s+vez|una\s+volta)\b")
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\d+(?:[.,:]\d+)*|\S")


def gloss(text: str) -> str:
    """``text`` with every word the glossary knows replaced by its English gloss, lower case.

    "Je la nourris deux fois par jour" gives "je la feed two times par day": the glossed words can
    meet the creator's posts; the rest (function words, names) are kept.
    """
    folded = _ONCE.sub("once", _TWICE.sub("twice", text.casefold()))
    return " ".join(_gloss_word(w) for w in _WORD.findall(folded))


def _gloss_word(word: str) -> str:
    # Plurals the glossary does not list ("farines", "huevos") by their singular.
    for form in (word, word[:-1] if word.endswith("s") else "", word[:-2] if word.endswith("es") else ""):
        if form in GLOSSARY:
            return GLOSSARY[form]
    return word
