"""Test data shared by the prep drivers: hand-written medical chat records in each input
layout (alpaca, sharegpt, messages) and the conversations they stand for."""


def conversations():
    """(format, records, conversations as [(role, content, input)]) written by hand."""
    alpaca = [
        {"instruction": "List two common causes of iron-deficiency anaemia.", "input": "",
         "output": "Chronic blood loss, for example from the gut, and low dietary iron intake."},
        {"instruction": "Convert the dose to milligrams.", "input": "0.25 g of amoxicillin",
         "output": "0.25 g is 250 mg of amoxicillin."},
        {"instruction": "Explain what an HbA1c test measures.", "input": "<noinput>",
         "output": "It reflects the average blood glucose over roughly the previous three months."},
    ]
    sharegpt = [
        {"conversations": [
            {"from": "system", "value": "You are a careful clinical assistant."},
            {"from": "human", "value": "What is a normal resting heart rate for adults?"},
            {"from": "gpt", "value": "Usually between 60 and 100 beats per minute."},
            {"from": "human", "value": "And for trained athletes?"},
            {"from": "gpt", "value": "It can be as low as 40 to 60 beats per minute."}]},
        {"conversations": [
            {"from": "human", "value": "Is paracetamol an NSAID?"},
            {"from": "gpt", "value": "No. It is an analgesic and antipyretic with weak anti-inflammatory effect."}]},
    ]
    messages = [
        {"messages": [
            {"role": "user", "content": "Name the first-line treatment of anaphylaxis."},
            {"role": "assistant", "content": "Intramuscular adrenaline (epinephrine), 0.5 mg in adults."}]},
        {"messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What does BMI stand for?"},
            {"role": "assistant", "content": "Body mass index."},
            {"role": "user", "content": "How is it computed?"},
            {"role": "assistant", "content": "Weight in kilograms divided by the square of height in metres."}]},
    ]
    convs = []
    for r in alpaca:
        inp = r["input"] if r["input"] not in ("", "<noinput>") else None
        convs.append([("user", r["instruction"], inp), ("assistant", r["output"], None)])
    role = {"system": "system", "human": "user", "gpt": "assistant"}
    for r in sharegpt:
        convs.append([(role[t["from"]], t["value"], None) for t in r["conversations"]])
    for r in messages:
        convs.append([(t["role"], t["content"], None) for t in r["messages"]])
    return alpaca, sharegpt, messages, convs
