#!/usr/bin/env python3
"""Writes the spreadsheet fixtures of SpreadsheetTests with the real tools (openpyxl, odfpy):
pip install openpyxl odfpy; python3 make-spreadsheets.py. The files are committed; the tools
are not needed to run the tests."""
import datetime
import openpyxl
from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table, TableRow, TableCell, CoveredTableCell
from odf.text import P, S, Span
from odf.office import Annotation

HEADER = ["Mobile No.", "Sender ID", "Message Text", "product", "schedule_at"]

wb = openpyxl.Workbook()
ws = wb.active
ws.title = "Campaign"
ws.append(HEADER)
ws.append([919876543210, "MOBTXT", "Hello José", "T", datetime.datetime(2026, 11, 27, 10, 30)])
ws.append([9876543211, "MOBTXT", "Line one\nLine two", "T", None])
ws["A3"].number_format = "0"
ws.append([])  # row 4 stays empty
ws.append([9876543212.0, "MOBTXT", "Offer ₹500", "T", None])
ws.append(["+91 98765 43213", "MOBTXT", "Hi", "T", None])
ws.append([9876543214, "MOBTXT", "Grouped", "T", None])
ws["A7"].number_format = "#,##0"
ws.append([919876543215, "MOBTXT", "Scientific", "T", None])
ws["A8"].number_format = "0.00E+00"
notes = wb.create_sheet("Notes")
notes.append(["recipient", "sender", "message", "product"])
notes.append([9876543299, "NOTESX", "From the second sheet", "T"])
wb.save("people.xlsx")

doc = OpenDocumentSpreadsheet()
def row(cells, repeated=None):
    r = TableRow(numberrowsrepeated=repeated) if repeated else TableRow()
    for c in cells:
        r.addElement(c)
    return r
def text(value, **kw):
    c = TableCell(valuetype="string", **kw)
    c.addElement(P(text=value))
    return c
def number(value, shown):
    c = TableCell(valuetype="float", value=value)
    c.addElement(P(text=shown))
    return c
table = Table(name="Campaign")
table.addElement(row([text(h) for h in HEADER]))
when = TableCell(valuetype="date", datevalue="2026-11-27T10:30:00")
when.addElement(P(text="27/11/26 10:30"))
spaced = TableCell(valuetype="string")
p = P(text="two")
p.addElement(S(c=3))
p.addElement(Span(text="spaces"))
spaced.addElement(p)
spaced.addElement(P(text="second paragraph"))
noted = TableCell(valuetype="string")
note = Annotation()
note.addElement(P(text="a comment, not the cell"))
noted.addElement(note)
noted.addElement(P(text="MOBTXT"))
table.addElement(row([number("9876543210", "9876543210"), noted, spaced, text("T"), when]))
table.addElement(row([number("9876543211", "9876543211"), text("MOBTXT"), text("Twice"), text("T"), TableCell()], repeated=2))
table.addElement(row([TableCell(numbercolumnsrepeated=5)], repeated=3))
table.addElement(row([text("+91 98765 43212"), text("MOBTXT"), text("After the gap"), text("T"), CoveredTableCell(),
                      TableCell(numbercolumnsrepeated=1000)]))
table.addElement(row([TableCell(numbercolumnsrepeated=1024)], repeated=1048000))
doc.spreadsheet.addElement(table)
notes = Table(name="Notes")
notes.addElement(row([text(h) for h in ["recipient", "sender", "message", "product"]]))
notes.addElement(row([number("9876543299", "9876543299"), text("NOTESX"), text("From the second sheet"), text("T")]))
doc.spreadsheet.addElement(notes)
doc.save("people.ods")

# XlsxWriter writes as Excel does: a shared-strings table (after the sheets in the zip),
# rich-text runs, and _xHHHH_ escapes for control characters.
import xlsxwriter
book = xlsxwriter.Workbook("shared.xlsx")
sheet = book.add_worksheet("Sheet1")
bold = book.add_format({"bold": True})
leading = book.add_format({"num_format": "00000000000"})
plus = book.add_format({"num_format": '"+"0'})
sheet.write_row(0, 0, ["recipient", "sender", "message", "product"])
sheet.write_number(1, 0, 9876543210, leading)          # 09876543210 as shown
sheet.write_string(1, 1, "MOBTXT")
sheet.write_rich_string(1, 2, "Hello ", bold, "rich", " world")
sheet.write_string(1, 3, "T")
sheet.write_number(2, 0, 919876543211, plus)           # +919876543211 as shown
sheet.write_string(2, 1, "MOBTXT")
sheet.write_string(2, 2, "carriage\r\nreturn")
sheet.write_string(2, 3, "T")
sheet.write_boolean(3, 0, True)
sheet.write_string(3, 1, "MOBTXT")
sheet.write_string(3, 2, "a boolean is no number")
sheet.write_string(3, 3, "T")
sheet.write_formula(4, 0, "=9876543200+13", None, 9876543213)
sheet.write_string(4, 1, "MOBTXT")
sheet.write_string(4, 2, "Hello ")                      # the same string twice: one table entry
sheet.write_string(4, 3, "T")
sheet.write_string(4, 5, "past the header")
book.close()
