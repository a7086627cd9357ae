"""Intake questionnaires per product category, shown on the enrollment page.

Every question carries one of the intake categories the clinical tier reports
(symptoms, medical_history, medications, allergies, medical_conditions, goals, demographics).
"""

from __future__ import annotations

from dataclasses import dataclass

INTAKE_CATEGORIES = (
    "demographics",
    "symptoms",
    "medical_history",
    "medications",
    "allergies",
    "medical_conditions",
    "goals",
)


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    category: str
    kind: str = "text"  # text | textarea | select | yesno
    options: tuple[str, ...] = ()
    required: bool = True


COMMON: tuple[Question, ...] = (
    Question(
        "current_medications",
        "What medications or supplements are you currently taking?",
        "medications",
        "textarea",
    ),
    Question("allergies", "Do you have any allergies (medications, foods, other)?", "allergies", "textarea"),
    Question(
        "medical_history",
        "Describe any significant past medical history, surgeries or hospitalizations.",
        "medical_history",
        "textarea",
    ),
    Question(
        "medical_conditions",
        "Do you currently have any of these: heart disease, high blood pressure, "
        "liver or kidney disease, cancer?",
        "medical_conditions",
        "textarea",
    ),
)

BY_CATEGORY: dict[str, tuple[Question, ...]] = {
    "trt-cream": (
        Question(
            "current_symptoms",
            "Which symptoms are you experiencing (fatigue, low libido, low mood, ...)?",
            "symptoms",
            "textarea",
        ),
        Question(
            "symptom_duration",
            "How long have you had these symptoms?",
            "symptoms",
            "select",
            ("Less than 3 months", "3-12 months", "More than a year"),
        ),
        Question("prior_trt", "Have you used testosterone therapy before?", "medical_history", "yesno"),
        Question("goals", "What do you hope to achieve with treatment?", "goals", "textarea"),
    ),
    "peptides": (
        Question(
            "current_symptoms", "What injury or recovery concern brings you here?", "symptoms", "textarea"
        ),
        Question(
            "injury_duration",
            "How long ago did it start?",
            "symptoms",
            "select",
            ("Less than a month", "1-6 months", "More than 6 months"),
        ),
        Question("prior_peptides", "Have you used peptide therapy before?", "medical_history", "yesno"),
        Question("goals", "What outcome are you looking for?", "goals", "textarea"),
    ),
}

GENERIC: tuple[Question, ...] = (
    Question("current_symptoms", "Which symptoms would you like help with?", "symptoms", "textarea"),
    Question("goals", "What do you hope to achieve with treatment?", "goals", "textarea"),
)


def questions_for(category: str) -> tuple[Question, ...]:
    return BY_CATEGORY.get(category, GENERIC) + COMMON
