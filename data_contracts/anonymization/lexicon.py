"""Word lists the context recognizers use to tell names from shop-floor words.

``NON_NAME_WORDS`` are words that are never taken for an off-roster name (function words, shop-floor vocabulary,
weekdays, months): they stop a name span and keep capitalised technical words ("Spindle", "Coolant") readable.
``GIVEN_NAMES`` and ``SURNAMES`` are common names across the plant's languages: a capitalised one is a person
without any cue. Cue words introduce a name ("contractor", "called", "Mr").
"""

from __future__ import annotations

_FUNCTION = """
a an the and or but nor so yet if then than that this these those there here where when while after before
until since because as at by for from in into of off on onto out over per to up upon via with within without
about above across against along among around behind below beneath beside between beyond during except inside
near outside through throughout toward towards under underneath unlike unto
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs who whom whose
what which whoever someone somebody anyone anybody everyone everybody nobody none nothing something anything
everything all any both each either neither every few many much more most other others another same such own
is am are was were be been being have has had having do does did done doing will would shall should can could
may might must need needs needed ought let lets
not no yes ok okay please thanks thank also just only still again already even ever never always often
sometimes usually soon later now today tonight tomorrow yesterday morning afternoon evening night noon midnight
early late very too quite really almost nearly about approx approximately around maybe perhaps probably
how why whether though although however therefore otherwise instead meanwhile anyway
one two three four five six seven eight nine ten eleven twelve first second third fourth fifth last next
previous half quarter double single
"""

_VERBS = """
add added adjust adjusted advise advised arrive arrived ask asked assist assisted bring brought call called
came come comes cannot change changed check checked checking clean cleaned cleaning clear cleared close closed
confirm confirmed continue continued cover covered cut debug did drop dropped escalate escalated expect expected
failed fails fill filled find found fix fixed fixing follow followed get gets getting give given go goes going
gone got handed handle handled help helped hold holding inform informed inspect inspected install installed
keep keeping kept leak leaking leaked left look looked looking lost lubricate lubricated made make monitor
monitored move moved need noted notified notify observed open opened order ordered paged phoned placed plan
planned put ran reach reached read recalibrate recalibrated refill refilled relieved remove removed repair
repaired replace replaced report reported requested reset restart restarted resume resumed retighten
retightened returned run running said say says scheduled see seen send sent set showed shows shut signed spoke
start started stop stopped swap swapped take taken talked tell test tested told took tried try tuned update
updated use used verified verify wait waiting want wanted was went work worked working write written
acknowledged acknowledge approved approve booked cleared contacted emailed messaged met visited arriving
calibrated calibrate tightened loosened aligned realigned greased flushed drained topped primed purged
"""

_SHOPFLOOR = """
alarm alarms andon area assembly audit auditor axis backlog band bar batch bay bearing bearings belt bin blade
block board bolt bolts boss box bracket brake breakdown buffer bulb burr burrs cable cables calibration cap
capacity card cart cell chain changeover charge chart chiller chip chips chuck circuit clamp clamps cleanup
clutch coating coil compressor conveyor coolant counter cover crack crane crew customer cycle cylinder damage
damaged defect defects delay delivery die dies dimension dimensions display door downtime drawing drill drive
drives dryer dust electrician emergency encoder energy engineer engineering equipment error errors estop
extruder fan fault faults feed feeder filter fitter fixture fixtures flange floor flow foreman forklift frame
furnace fuse gasket gauge gear gearbox grinder guard handover heater hopper hose hoses hydraulic hydraulics
idle inspection inspector instrument issue issues jam jammed job key kit label labels ladder laser lathe lead
leakage level lever lift light limit line lines load loader lock log logistics loop lot lots lube lubricant
machine machines maintenance manager material materials measurement mechanic mill mixer mold motor mould
nozzle oil operation operations operator operators order orders oven overtime pallet pallets panel part parts
pin pipe piston plan planner plant plate pneumatic power press pressure problem process production program pump
quality rack reading reel relay repair rep report robot roller rollers room safety sample samples scale scrap
screen screw seal seals sensor sensors service setup shaft shift shifts shipment shop shutdown signal site
sleeve slide slot spare spares spec speed spindle spring staff station status stock supervisor supplier supply
switch system table tank team tech technician temperature test thermocouple tool tooling tools torque
tote trainee transformer tray trolley tube unit vacuum valve valves vendor vibration visitor voltage warehouse
washer weld welder welding wheel wire wiring work worker workers workpiece zone contractor contractors
visitors guest guests consultant driver temp agency colleague colleagues everyone helper apprentice
max module modules servo servos turret gripper grippers steel aluminium aluminum brass copper polymer
granulate primer resin plastic rubber insert inserts overload overstrain overheating cabinet lockout tag keys
hmi plc scada mes erp oee sap kpi qa qc ppm rpm bar psi mm cm kg nm amp amps
deg degc temp temps vib hz kw kwh ok nok na tbd fyi asap eta wip fifo fai spc cpk
coolant-line spindle-motor heat heats cooling leak leaks noise smell smoke spark sparks wear worn broken loose
tight high low hot cold warm wet dry good bad new old full empty short long small big large minor major normal
abnormal stable unstable fine slow fast ready done late overdue urgent critical pending open closed
red green yellow blue black white orange grey gray silver
north south east west left right front back rear top bottom upper lower inner outer main aux spare backup
manual auto automatic remote local onsite offsite
"""

_CALENDAR = """
mr mrs ms miss dr prof herr frau sir madam
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
january february march april may june july august september october november december
jan feb mar apr jun jul aug sep sept oct nov dec weekend weekday week weeks month months year years day days
hour hours minute minutes min mins sec secs shift-a shift-b shift-c
"""

_COMPANIES = """
siemens bosch rexroth fanuc abb kuka festo sick omron schneider mitsubishi heidenhain trumpf dmg mori haas
mazak okuma makino sinumerik opcenter plex atlas copco kaeser grundfos danfoss parker hydac balluff ifm
keyence cognex zeiss mitutoyo hexagon renishaw sandvik kennametal iscar wurth würth
"""


def _words(block: str) -> frozenset[str]:
    return frozenset(block.casefold().split())


NON_NAME_WORDS: frozenset[str] = _words(_FUNCTION + _VERBS + _SHOPFLOOR + _CALENDAR + _COMPANIES)

# Common given names across the plant's languages; capitalised, they mark a person without a cue.
GIVEN_NAMES: frozenset[str] = _words(
    """
    aaron adam adrian agnieszka ahmed ahmet aisha alan albert alberto aleksandra alex alexander alexandra ali
    alice alicia alina amanda amy ana andrea andreas andrei andrew andrzej angela anita ann anna anne annika
    anthony antonio anton ashley aylin barbara beata ben benjamin bernd birgit boris brian bruno carla carlos
    carmen caroline catherine charles charlotte chen chris christian christina christine christopher claudia
    cristina daniel daniela david deborah dennis diana diego dieter dmitri dominik donald dorota dorothy
    edward elena elif elisabeth elizabeth emily emma emre eric erik eva ewa fabian fatima felix fernando
    florian francesca francesco frank franz gabriel gabriele george georg gerhard giulia giuseppe gregory hana
    hans hannah harald heinz helena helga henrik hugo ibrahim igor ingrid irene isabel ivan ivana jacob jakub
    james jan jana jane janet jason javier jean jennifer jens jessica jiri joanna johann johannes john jonas
    jorge jose joseph joshua juan julia julian jurgen jürgen justin karen karin karl karolina katarzyna
    katharina katherine kathleen kenneth kevin klaus krzysztof kurt lars laura lea lena leon linda lisa lucas
    lucia ludwig luis luka lukas łukasz maciej magdalena manfred manuel marc marcel marco marcin marek maria
    marie marina mario marek markus marta martina mary mateusz matthew matthias max maximilian mehmet melanie
    michael michal michał michelle miguel mike milan miroslav monika mustafa natalia natalie nicole niklas
    nikola nina oliver olga oscar pablo paolo patricia patrick paul paula paulina pavel pawel paweł pedro
    peter petr petra philipp piotr rachel rafael rainer ralf rebecca richard robert roberto roman ronald
    rosa ryan sabine sandra sara sarah sebastian sergei sergio simon simone sofia sophie stefan stefanie
    stephanie stephen steven susan susanne sven tanja teresa thomas timothy tobias tomas tomasz tomáš torsten
    ulrich ursula uwe valentina vanessa vera victoria viktor vladimir walter wei werner william wojciech
    wolfgang xavier yusuf yuki zoe zofia zuzana tereza jakob ondrej ondřej radek lenka veronika kateřina
    katerina lucie martin pavla marketa markéta jaroslav jaroslava vaclav václav josef zdenek zdeněk milos
    miloš dusan dušan stanislav ladislav libor hynek vojtech vojtěch marian mariusz grzegorz dariusz artur
    kamil bartosz damian szymon kacper wiktoria oskar jose luigi matteo alessandro lorenzo marta ines joao
    joão tiago rui hiroshi kenji takeshi priya rahul amit sanjay deepak raj anil sunil vikram
    """
)

# Common surnames across the plant's languages; capitalised, they mark a person without a cue.
SURNAMES: frozenset[str] = _words(
    """
    smith johnson williams jones miller davis wilson anderson taylor moore jackson harris clark lewis walker
    robinson thompson garcia martinez rodriguez hernandez lopez gonzalez perez sanchez ramirez torres flores
    rivera gomez diaz reyes morales ortiz gutierrez chavez ramos ruiz alvarez mendoza castillo jimenez moreno
    romero fernandez muller müller mueller schmidt schneider fischer weber meyer meier wagner becker schulz
    hoffmann schafer schäfer koch bauer richter klein wolf schroder schröder neumann schwarz zimmermann braun
    kruger krüger hofmann hartmann lange schmitt werner krause lehmann schmid schulze maier köhler kohler
    herrmann konig könig walter huber kaiser fuchs peters lang scholz möller moller weiss weiß jung hahn
    novak nowak novák kowalski kowalska wisniewski wiśniewski wojcik wójcik kowalczyk kaminski kamiński
    lewandowski zielinski zieliński szymanski szymański wozniak woźniak dabrowski dąbrowski kozlowski
    kozłowski jankowski mazur kwiatkowski krawczyk piotrowski grabowski nowakowski pawlowski pawłowski
    michalski nowicki adamczyk dudek zajac zając wieczorek jablonski jabłoński krol król majewski olszewski
    jaworski malinowski stepien stępień gorski górski rutkowski sikora walczak baran
    svoboda novotny novotný dvorak dvořák cerny černý prochazka procházka kucera kučera vesely veselý horak
    horák nemec němec marek pospisil pospíšil hajek hájek jelinek jelínek kral král ruzicka růžička benes
    beneš fiala sedlacek sedláček dolezal doležal zeman kolar kolář navratil navrátil cermak čermák urban
    vanek vaněk blazek blažek kriz kříž kovar kovář bartos bartoš vlcek vlček polak polák kopecky kopecký
    horvath horváth kovacs kovács toth tóth szabo szabó nagy varga kiss molnar molnár nemeth németh farkas
    balogh popescu ionescu popa radu dumitru stan stoica gheorghe rusu
    rossi russo ferrari esposito bianchi romano colombo ricci marino greco gallo conti costa giordano
    mancini rizzo lombardi moretti barbieri fontana santoro mariani rinaldi caruso ferrara galli
    dubois durand leroy moreau laurent lefebvre michel roux fournier girard bonnet dupont lambert fontaine
    rousseau vincent muller faure andre mercier blanc guerin boyer garnier chevalier francois legrand
    gauthier perrin robin clement morin nicolas henry mathieu
    silva santos ferreira pereira oliveira rodrigues martins sousa fernandes goncalves gonçalves
    yilmaz yılmaz kaya demir sahin şahin celik çelik yildiz yıldız yildirim yıldırım ozturk öztürk aydin
    aydın ozdemir özdemir arslan dogan doğan kilic kılıç aslan cetin çetin kara koc koç kurt ozkan özkan
    ivanov petrov sidorov smirnov popov kuznetsov sokolov lebedev kozlov novikov morozov volkov
    jensen nielsen hansen pedersen andersen christensen larsen sorensen sørensen rasmussen johansson
    andersson karlsson nilsson eriksson larsson olsson persson svensson gustafsson virtanen korhonen
    nieminen makinen mäkinen jansen janssen visser bakker mulder meijer smit vries dekker peeters maes
    patel singh kumar sharma gupta nguyen tran pham hoang phan vu dang bui kim lee choi chen wang
    zhang liu yang huang zhao zhou xu tanaka suzuki sato takahashi watanabe ito yamamoto nakamura
    kobayashi kato murphy kelly byrne ryan walsh o'brien obrien mccarthy doyle gallagher kennedy lynch
    murray quinn moore brennan burke collins evans edwards hughes roberts phillips campbell mitchell
    parker stewart morris rogers cooper peterson richardson cox howard watson bennett sanders jenkins
    perry powell russell sullivan fisher henderson coleman simmons patterson jordan reynolds hamilton
    graham wallace woods owens marshall harrison gibson ellis tucker porter hunter hicks
    """
)

# Words after which a name follows ("called Kowalski", "contractor Jan Kowalski", "Mr Brown").
TITLE_CUES: tuple[str, ...] = ("mr", "mrs", "ms", "miss", "dr", "prof", "herr", "frau", "ing", "sir", "madam")
ROLE_CUES: tuple[str, ...] = (
    "contractor",
    "visitor",
    "technician",
    "tech",
    "service tech",
    "service technician",
    "service engineer",
    "engineer",
    "electrician",
    "mechanic",
    "fitter",
    "welder",
    "auditor",
    "rep",
    "representative",
    "consultant",
    "driver",
    "trainee",
    "temp",
    "guest",
    "colleague",
    "specialist",
    "installer",
    "programmer",
    "courier",
    "supplier",
    "vendor",
    "customer",
    "inspector",
    "operator",
    "supervisor",
    "foreman",
    "planner",
    "lead",
    "manager",
    "apprentice",
    "helper",
    "agency worker",
    "new hire",
    "student",
    "intern",
)
VERB_CUES: tuple[str, ...] = (
    "called",
    "call",
    "calling",
    "phoned",
    "rang",
    "paged",
    "emailed",
    "e-mailed",
    "messaged",
    "texted",
    "spoke with",
    "spoke to",
    "speak to",
    "speak with",
    "talked to",
    "talked with",
    "talk to",
    "told",
    "asked",
    "ask",
    "informed",
    "notified",
    "notify",
    "contacted",
    "contact",
    "met",
    "met with",
    "per",
    "thanks to",
    "thank",
    "handed over to",
    "handed to",
    "handover to",
    "hand over to",
    "escalated to",
    "reported by",
    "checked by",
    "confirmed by",
    "fixed by",
    "repaired by",
    "approved by",
    "signed off by",
    "assisted by",
    "helped by",
    "relieved by",
    "covered by",
    "replaced by",
    "done by",
    "inspected by",
    "according to",
    "cc",
    "attn",
    "visit from",
    "visited by",
    "waiting for",
    "wait for",
    "ask for",
    "asked for",
    "together with",
    "along with",
    "with",
    "from",
    "by",
    "for",
    "and",
    "to",
)
# Words right after a capitalised word that make it a person ("Kowalski said", "Kowalski (contractor)").
AFTER_CUES: tuple[str, ...] = (
    "said",
    "says",
    "told",
    "asked",
    "reported",
    "called",
    "came",
    "comes",
    "will come",
    "is coming",
    "was here",
    "is here",
    "is on site",
    "was on site",
    "arrived",
    "left",
    "fixed",
    "repaired",
    "replaced",
    "checked",
    "confirmed",
    "noticed",
    "found",
    "saw",
    "wants",
    "needs",
    "knows",
    "promised",
    "agreed",
    "suggested",
    "recommended",
    "thinks",
    "mentioned",
    "from",
)
