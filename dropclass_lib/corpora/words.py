"""The vocabulary the synthetic speakers read: common English words, so that every voice
reads different, pronounceable text (utterances are random word sequences)."""

WORDS = tuple("""
able about above across act add after again against age ago agree air all almost alone along
already also always among and animal another answer any apple area arm around art ask away baby
back bad bag ball bank base bear beat beautiful because bed before began begin behind believe
below best better between big bird black blue boat body book both bottom box boy bread bright
bring brother brown build burn busy but buy call came can car care carry case cat catch cause
center certain chair chance change check child city class clean clear climb close cloud coast
cold color come common company cook cool copy corn correct cost could country course cover cow
cross crowd cry cup current cut dance dark day dead deal dear decide deep desert design develop
did die different dinner direct distant doctor does dog dollar done door double down draw dream
dress drink drive drop dry during each early earth east easy eat edge egg eight either else end
enemy energy enough enter equal even evening event ever every exact example except eye face fact
fair fall family famous far farm fast father fear feel field fight figure fill final find fine
finger fire first fish five floor flower fly follow food foot force forest form forward found
four free fresh friend front fruit full game garden gather gave general gentle girl give glad
glass gold good got grass great green ground group grow guess guide hair half hand happen happy
hard have head hear heart heat heavy held help here high hill history hold hole home hope horse
hot hour house huge human hundred hunt idea inch interest iron island job join jump just keep
kind king kitchen knew know lady lake land large last late laugh lead learn leave left leg less
letter level lift light like line lion list listen little live long look lost loud love low
machine made main make man many map mark market matter mean measure meet melody metal middle
might mile milk mind minute miss modern moment money month moon morning mother mountain mouth
move music name narrow nation near need never new next night nine noise north note nothing
notice number ocean offer office often old once open orange order other over page paint paper
park part party pass past path pay people perhaps person picture piece place plain plan plant
play please poem point poor position power present pretty problem produce pull push quick quiet
race rain raise reach read ready real reason record red region remember repeat rest rich ride
right ring river road rock roll room rope round row rule run safe said sail salt same sand save
say school science sea season seat second see seed sell send sense serve settle seven shape share
sharp ship shoe shop short shoulder shout show side sign silent silver simple sing sister sit
six size skin sky sleep slow small smell smile snow soft soil soldier some song soon sound south
space speak special speed spell spend spring square stand star start station stay steam step
still stone stop store story straight strange stream street strong student study subject sugar
summer sun supply sure surface sweet swim table tail take talk tall teach team tell ten test
thank thick thin thing think third thousand three through throw tie time tiny together told tone
took tool top touch toward town track trade train travel tree trouble true try turn twelve two
under until valley value very village visit voice wait walk wall warm wash watch water wave wear
weather week weight west wheel while white whole wide wife wild will wind window winter wire
wise woman wonder wood word work world write wrong yard year yellow young
""".split())
