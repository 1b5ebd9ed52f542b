import SMSBatch
print("smsbatch")
