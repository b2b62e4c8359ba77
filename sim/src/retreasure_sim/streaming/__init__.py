"""The web shop as a live site: its clickstream and its payment gateway's transactions published to Kafka topics
(``wire.py`` decides every message and fault, ``producer.py`` puts them on a broker at a chosen pace)."""
