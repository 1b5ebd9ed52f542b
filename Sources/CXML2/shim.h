#include <libxml/xmlversion.h>
/* Debian's libxml2 is built with ICU, and its encoding.h then includes the system's ICU
   headers, which clash with the ICU Foundation bundles (same enums, other members). smsbatch
   never touches an encoding handler's fields, so the ICU part is left out of the import. */
#undef LIBXML_ICU_ENABLED
#include <libxml/xmlreader.h>
#include <libxml/xmlerror.h>
